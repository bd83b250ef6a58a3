using System.Diagnostics;
using System.Globalization;
using System.Text;
using FastBroker.Client;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby that joins empty behind a long journal: it copies the backlog from the primary's journal while the
/// primary keeps accepting publishes, and ends where the primary ends, record for record.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class CatchUpFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "backlog.ticks";
    private const int Backlog = 1_000_000;

    [Fact]
    public async Task Empty_standby_catches_up_a_million_message_backlog_while_the_primary_keeps_publishing()
    {
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", ["--role", "primary"]);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", ["--role", "standby"]);
            await a.StartAsync();
            await a.WaitForAsync(s => s.IsPrimary, "a is primary, alone");

            var options = BrokerClientOptions.Default with { Endpoints = [a.ClientEndpoint], ReconnectTimeout = TimeSpan.FromSeconds(30), MaxInFlight = 8192 };
            await using var publisher = await BrokerClient.ConnectAsync(options);
            var sw = Stopwatch.StartNew();
            await PublishPipelinedAsync(publisher, "b", 0, Backlog, CancellationToken.None);
            output.WriteLine($"{Backlog:N0} published in {sw.Elapsed.TotalSeconds:F1} s");

            // The standby starts empty while a second producer keeps publishing until the standby has copied the backlog.
            await using var live = await BrokerClient.ConnectAsync(options);
            using var stop = new CancellationTokenSource();
            var extra = Task.Run(() => PublishPipelinedAsync(live, "x", 0, int.MaxValue, stop.Token));
            sw.Restart();
            await b.StartAsync();
            await b.WaitForAsync(s => s.ReplicaOf(Topic) is { Next: >= Backlog } || extra.IsCompleted, "b copies the backlog", TimeSpan.FromSeconds(120));
            await stop.CancelAsync();
            var published = await extra.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(published > 0, "nothing was published while the standby caught up");

            var head = Backlog + published;
            var primary = await a.WaitForAsync(s => s.Standby is { Attached: true } && s.StandbyCaughtUp(Topic), "a sees b hold everything", TimeSpan.FromSeconds(120));
            Assert.Equal(head, primary.Standby!.Topics.Single(t => t.Topic == Topic).Head);
            var copy = (await b.WaitForAsync(s => s.ReplicaOf(Topic) is { Next: var n, Durable: var d } && n == head && d == head, "b ends at a's head", TimeSpan.FromSeconds(120))).ReplicaOf(Topic)!;
            output.WriteLine($"standby caught up in {sw.Elapsed.TotalSeconds:F1} s: {copy.Next:N0} records ({published:N0} published meanwhile)");
            Assert.Equal(0, copy.First);

            // Sampled records are the same bytes on both nodes (dumped from each journal: offset, time, flags, headers, payload).
            foreach (var offset in new long[] { 0, 1, Backlog / 2, Backlog - 1, Backlog, head - 1 })
            {
                var onA = await DumpAsync(a, offset);
                var onB = await DumpAsync(b, offset);
                Assert.Equal(onA, onB);
                var expected = offset < Backlog ? $"b{offset:D7}" : $"x{offset - Backlog:D7}";
                Assert.Contains($"offset={offset} ", onA, StringComparison.Ordinal);
                Assert.Contains($"=\"{expected}\"", onA, StringComparison.Ordinal);
            }
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>Publishes prefix0000000, … with up to 4,096 unconfirmed (the end-to-end bench's loop); returns how many.</summary>
    private static async Task<int> PublishPipelinedAsync(BrokerClient client, string prefix, int first, int count, CancellationToken stop)
    {
        var window = new Queue<ValueTask<long>>(4096);
        var payload = new byte[1 + 7];
        var n = 0;
        for (; n < count && !stop.IsCancellationRequested; n++)
        {
            if (window.Count == 4096)
            {
                await window.Dequeue();
            }

            Encoding.ASCII.GetBytes(prefix + (first + n).ToString("D7", CultureInfo.InvariantCulture), payload);
            window.Enqueue(client.PublishAsync(Topic, payload));
        }

        while (window.Count > 0)
        {
            await window.Dequeue();
        }

        return n;
    }

    private static async Task<string> DumpAsync(NodeProcess node, long offset)
    {
        var dir = Path.Combine(node.DataDirectory, "topics", Topic, "journal");
        var lines = await Cli.RunAsync("journal", "dump", dir, "--from-offset", offset.ToString(CultureInfo.InvariantCulture), "--count", "1");
        return Assert.Single(lines);
    }
}
