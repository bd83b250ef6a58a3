using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using FastBroker.Bench.Infrastructure;
using FastBroker.Client;

namespace FastBroker.Bench.Failover;

/// <summary>
/// Publishes payloads numbered 0, 1, 2, … at a fixed rate from a paced thread (publishing goes on while the client
/// reconnects: the client queues them), and records which were confirmed, which failed, and when. It can watch for
/// the first confirmation of a publish issued after a given moment (see <see cref="FirstConfirmIssuedAfter"/>).
/// </summary>
internal sealed class SequencedPublisher
{
    /// <summary>The sequence number is the first 8 bytes (little-endian) of each payload; the rest is zeros.</summary>
    public const int PayloadBytes = 100;

    private readonly BrokerClient _client;
    private readonly string _topic;
    private readonly int _rate;
    private readonly PublishOptions _options;
    private readonly BlockingCollection<(long Seq, long Issued, Task<long> Confirm)> _pending = [];
    private readonly List<byte> _states = []; // per sequence number: 0 pending, 1 confirmed, 2 failed
    private readonly Dictionary<string, (int Count, string First)> _errors = new(StringComparer.Ordinal);
    private readonly Thread _sender;
    private Task? _recorder;
    private volatile bool _stop;
    private long _watchFrom = long.MaxValue;
    private TaskCompletionSource<long>? _firstAfter;
    private long _confirmed;
    private long _failed;

    public SequencedPublisher(BrokerClient client, string topic, int rate, PublishOptions options)
    {
        _client = client;
        _topic = topic;
        _rate = rate;
        _options = options;
        _sender = new Thread(Send) { Name = "bench-failover-pacer", IsBackground = true };
    }

    /// <summary>Publishes issued so far.</summary>
    public long Published
    {
        get
        {
            lock (_states)
            {
                return _states.Count;
            }
        }
    }

    /// <summary>Publishes confirmed so far.</summary>
    public long Confirmed => Interlocked.Read(ref _confirmed);

    /// <summary>Publishes whose confirmation failed (e.g. NotReplicated).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Failures by error code: how many, and the first message.</summary>
    public string ErrorSummary
    {
        get
        {
            lock (_errors)
            {
                return string.Join("; ", _errors.Select(e => $"{e.Value.Count}× {e.Key} (first: {e.Value.First})"));
            }
        }
    }

    public void Start()
    {
        _recorder = Task.Run(RecordAsync);
        _sender.Start();
    }

    /// <summary>True if the publish with sequence number <paramref name="seq"/> was confirmed.</summary>
    public bool IsConfirmed(long seq)
    {
        lock (_states)
        {
            return _states[(int)seq] == 1;
        }
    }

    /// <summary>
    /// Completes with the <see cref="Stopwatch"/> timestamp of the first confirmation of a publish issued at or
    /// after <paramref name="timestamp"/> (replaces any earlier watch).
    /// </summary>
    public Task<long> FirstConfirmIssuedAfter(long timestamp)
    {
        var tcs = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _firstAfter, tcs);
        Volatile.Write(ref _watchFrom, timestamp);
        return tcs.Task;
    }

    /// <summary>Stops publishing and waits until every publish issued has been confirmed or has failed.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        Stop();
        await _recorder!.WaitAsync(timeout).ConfigureAwait(false);
    }

    /// <summary>Stops publishing (idempotent); confirmations still pending complete on their own.</summary>
    public void Stop()
    {
        _stop = true;
        if (_sender.IsAlive)
        {
            _sender.Join();
        }
    }

    private void Send()
    {
        var payload = new byte[PayloadBytes];
        var interval = Stopwatch.Frequency / (double)_rate;
        var start = Stopwatch.GetTimestamp();
        try
        {
            for (var seq = 0L; !_stop; seq++)
            {
                Pacer.WaitUntil(start + (long)(seq * interval));
                BinaryPrimitives.WriteInt64LittleEndian(payload, seq);
                lock (_states)
                {
                    _states.Add(0);
                }

                // Taken before the call: a publish issued after the old primary was reaped cannot be confirmed by it.
                var issued = Stopwatch.GetTimestamp();
                Task<long> confirm;
                try
                {
                    confirm = _client.PublishAsync(_topic, payload, _options).AsTask();
                }
                catch (Exception ex) when (ex is ObjectDisposedException or BrokerClientException)
                {
                    confirm = Task.FromException<long>(ex); // the client closed under a failing benchmark
                    _stop = true;
                }

                _pending.Add((seq, issued, confirm));
            }
        }
        finally
        {
            _pending.CompleteAdding();
        }
    }

    private async Task RecordAsync()
    {
        foreach (var (seq, issued, confirm) in _pending.GetConsumingEnumerable())
        {
            // In issue order: confirmations arrive in order (a resend after a reconnect keeps the order), so the first
            // post-kill publish is seen complete within microseconds of its CONFIRM being read.
            byte state;
            try
            {
                await confirm.ConfigureAwait(false);
                state = 1;
                Interlocked.Increment(ref _confirmed);
                if (issued >= Volatile.Read(ref _watchFrom))
                {
                    Volatile.Read(ref _firstAfter)?.TrySetResult(Stopwatch.GetTimestamp());
                }
            }
            catch (Exception ex)
            {
                state = 2;
                Interlocked.Increment(ref _failed);
                lock (_errors)
                {
                    var key = ex is BrokerClientException bce ? bce.ErrorCode.ToString() : ex.GetType().Name;
                    _errors[key] = _errors.TryGetValue(key, out var e) ? (e.Count + 1, e.First) : (1, ex.Message);
                }
            }

            lock (_states)
            {
                _states[(int)seq] = state;
            }
        }
    }
}
