using System.Diagnostics;
using System.Text;
using FastBroker.Client;
using FastBroker.Protocol;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// One producer publishing numbered payloads (<c>prefix + sequence</c>) without pause, a window of them unconfirmed,
/// recording for each whether, where and over which connection it was confirmed. Runs may be repeated; the numbering
/// goes on, so every payload this publisher ever sent is distinct.
/// </summary>
internal sealed class SequencedPublisher(BrokerClient client, string topic, string prefix, PublishOptions? options = null)
{
    private readonly List<Publication> _all = [];
    private long _next;
    private int _confirmed;
    private int _failed;

    public int Confirmed => Volatile.Read(ref _confirmed);

    public int Failed => Volatile.Read(ref _failed);

    /// <summary>Every publication so far, in call (= producer sequence) order.</summary>
    public IReadOnlyList<Publication> All
    {
        get
        {
            lock (_all)
            {
                return [.. _all];
            }
        }
    }

    /// <summary>
    /// Publishes with up to <paramref name="window"/> unconfirmed until <paramref name="stop"/> (or until the client is
    /// closed), then waits for every one to end.
    /// </summary>
    public async Task RunAsync(int window, CancellationToken stop)
    {
        var open = new Queue<Publication>();
        while (!stop.IsCancellationRequested)
        {
            var p = new Publication(_next, prefix + _next.ToString("D9", System.Globalization.CultureInfo.InvariantCulture));
            _next++;
            p.Completion = TrackAsync(p, client.PublishAsync(topic, Encoding.UTF8.GetBytes(p.Payload), options));
            lock (_all)
            {
                _all.Add(p);
            }

            open.Enqueue(p);
            if (p.Error is BrokerClientException { ErrorCode: ErrorCode.Closed })
            {
                break; // the client was disposed or gave up (a failing test): stop instead of spinning
            }

            if (open.Count >= window)
            {
                await open.Dequeue().Completion;
            }
        }

        while (open.Count > 0)
        {
            await open.Dequeue().Completion;
        }
    }

    private async Task TrackAsync(Publication p, ValueTask<long> publish)
    {
        try
        {
            var offset = await publish;
            p.ConfirmedAt = Stopwatch.GetTimestamp();
            p.Connection = client.ConnectCount;
            p.Offset = offset;
            Interlocked.Increment(ref _confirmed);
        }
        catch (BrokerClientException ex)
        {
            p.Error = ex;
            Interlocked.Increment(ref _failed);
        }
    }
}
