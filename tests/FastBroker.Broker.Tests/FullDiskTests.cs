using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.BrokerTests;

/// <summary>
/// A full disk refuses publishes with <see cref="BrokerErrorCode.StorageFull"/> instead of confirming them, keeps every
/// confirmed one, and says so in the broker's log (rate-limited: a disk that stays full refuses every publish), so the
/// operator sees it and not only the publishers.
/// </summary>
public class FullDiskTests(ITestOutputHelper output)
{
    private const string Topic = "filling";

    [Fact]
    public async Task A_full_disk_refuses_publishes_keeps_every_confirmed_one_and_logs_the_refusals_once_per_interval()
    {
        using var dir = new TempDirectory();
        using var fs = TestMount.TryMount(dir.Combine("fs"), "12m", out var why);
        if (fs is null)
        {
            // xunit 2 has no dynamic skip: say why, loudly, and pass (as DiskFullTests).
            output.WriteLine($"SKIPPED: cannot mount a tmpfs ({why}); this test needs root or CAP_SYS_ADMIN.");
            return;
        }

        var log = new ConcurrentQueue<string>();
        var clock = new ManualClock();
        var options = BrokerOptions.Default with
        {
            DataDirectory = Path.Combine(fs.Path, "data"),
            Log = log.Enqueue,
            LogClock = clock,
            DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 64 << 10 },
        };
        var confirmed = new List<(long Offset, string Payload)>();
        var next = 0;
        string[] Refusals() => log.Where(l => l.Contains("storage full", StringComparison.Ordinal)).ToArray();

        await using (var broker = await Broker.OpenAsync(options))
        {
            // Until the disk is full (a pre-faulted spare segment may take a few more after the first refusal).
            async Task<BrokerException> PublishUntilRefused()
            {
                for (var i = 0; i < 2_000; i++)
                {
                    var payload = $"m{next++}:" + new string('x', 16 << 10);
                    try
                    {
                        confirmed.Add((await broker.PublishAsync(Topic, Encoding.UTF8.GetBytes(payload)), payload));
                    }
                    catch (BrokerException e)
                    {
                        return e;
                    }
                }

                throw new InvalidOperationException($"the disk never filled up ({confirmed.Count} confirmed)");
            }

            var first = await PublishUntilRefused();
            output.WriteLine($"{confirmed.Count} confirmed; refused: {first.Message}");
            Assert.Equal(BrokerErrorCode.StorageFull, first.Code);
            var line = Assert.Single(Refusals());
            output.WriteLine("log: " + line);
            Assert.Contains($"'{Topic}'", line, StringComparison.Ordinal);

            // Two more within the interval: held back, counted.
            Assert.Equal(BrokerErrorCode.StorageFull, (await PublishUntilRefused()).Code);
            Assert.Equal(BrokerErrorCode.StorageFull, (await PublishUntilRefused()).Code);
            Assert.Single(Refusals());

            clock.Advance(TimeSpan.FromSeconds(11));
            Assert.Equal(BrokerErrorCode.StorageFull, (await PublishUntilRefused()).Code);
            Assert.Equal(2, Refusals().Length);
            Assert.EndsWith("(and 2 more like it since the last such line, not logged)", Refusals()[1], StringComparison.Ordinal);

            // One more held back: the close writes it with its count instead of losing it.
            Assert.Equal(BrokerErrorCode.StorageFull, (await PublishUntilRefused()).Code);
            Assert.Equal(2, Refusals().Length);
        }

        Assert.Equal(3, Refusals().Length);
        Assert.EndsWith("(1 more like it since the last such line, not logged; this is the latest of them)", Refusals()[2], StringComparison.Ordinal);

        // A restart on the still full disk: every confirmed publish is there, in order, and nothing else.
        await using (var broker = await Broker.OpenAsync(options with { Log = null }))
        {
            using var sub = broker.Subscribe(Topic, new SubscriptionOptions { Start = StartPosition.Earliest });
            var c = new Collected();
            var r = new Recorder(c);
            Eventually.True(() =>
            {
                sub.Fetch(1000, ref r);
                return c.Items.Count >= confirmed.Count;
            }, "every confirmed message after the restart");
            Assert.Equal(confirmed, c.Items.Select(x => (x.Offset, x.Payload)));
        }
    }
}
