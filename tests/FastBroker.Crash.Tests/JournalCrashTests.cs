using System.Globalization;
using FastBroker.Journal;
using FastBroker.Journal.CrashHost;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Crash.Tests;

public class JournalCrashTests(ITestOutputHelper output)
{
    /// <summary>Rounds in the normal suite; set FASTBROKER_SOAK_ROUNDS for a soak run (e.g. 500).</summary>
    private static int Rounds =>
        int.TryParse(Environment.GetEnvironmentVariable("FASTBROKER_SOAK_ROUNDS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 12;

    private static string HostPath => Path.Combine(AppContext.BaseDirectory, "FastBroker.Journal.CrashHost.dll");

    [Fact]
    public void Kill9_at_random_moments_loses_no_acknowledged_record()
    {
        Assert.True(File.Exists(HostPath), $"crash host not built next to the tests: {HostPath}");
        using var dir = new TempDirectory("fastbroker-crash");
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"seed {seed}, {Rounds} rounds");
        long maxAcked = -1;
        long totalDropped = 0;
        for (var round = 0; round < Rounds; round++)
        {
            using (var child = ChildProcess.StartDotnet(HostPath, dir.Path))
            {
                // A random moment: after a random number of acknowledged records (the child is mid-append then).
                var target = 1 + random.Next(1, 3000);
                Eventually.True(() => child.LineCount > target || child.HasExited, $"round {round}: child acknowledges {target} records");
                Assert.False(child.HasExited, $"round {round}: child exited early: {child.Errors}");
                child.Kill();
                foreach (var line in child.Lines)
                {
                    if (line.StartsWith("ack ", StringComparison.Ordinal))
                    {
                        maxAcked = Math.Max(maxAcked, long.Parse(line.AsSpan(4), CultureInfo.InvariantCulture));
                    }
                }
            }

            using var journal = JournalLog.Open(dir.Path, CrashPayload.Options);
            var report = journal.Recovery;
            foreach (var d in report.Dropped)
            {
                Assert.True(d.FirstOffset > maxAcked, $"round {round}: recovery dropped acknowledged offset(s): {d} (max acked {maxAcked})");
            }

            totalDropped += report.DroppedRecordCount;
            Assert.True(journal.NextOffset > maxAcked, $"round {round}: next offset {journal.NextOffset}, max acked {maxAcked}");

            // Every offset from 0 is present, dense, with exactly its payload (so every acknowledged one is too).
            using (var reader = journal.OpenReader(ReadStart.Beginning, verifyChecksums: true))
            {
                long expected = 0;
                while (reader.TryRead(out var record))
                {
                    Assert.Equal(expected, record.Offset);
                    Assert.True(record.Payload.SequenceEqual(CrashPayload.For(expected)), $"round {round}: payload of offset {expected}");
                    expected++;
                }

                Assert.Equal(journal.NextOffset, expected);
            }

            // Nothing but zeros after the tail of the active segment.
            var active = Directory.GetFiles(dir.Path, "*.seg").Order(StringComparer.Ordinal).Last();
            var tail = TailPosition(active);
            var bytes = File.ReadAllBytes(active);
            Assert.True(bytes.AsSpan(tail).IndexOfAnyExcept((byte)0) < 0, $"round {round}: garbage after the tail at {tail} in {active}");
            Assert.True(JournalInspector.Verify(dir.Path).ExitCode == 0, $"round {round}: verify after recovery");
            output.WriteLine($"round {round}: acked up to {maxAcked}, journal ends at {journal.NextOffset}, {report}");
        }

        output.WriteLine($"{Rounds} rounds, {maxAcked + 1} acknowledged, {totalDropped} unacknowledged record(s) dropped as torn tails");
    }

    private static int TailPosition(string segmentPath)
    {
        var bytes = File.ReadAllBytes(segmentPath);
        var position = 128;
        while (position + 32 <= bytes.Length)
        {
            var length = BitConverter.ToInt32(bytes, position);
            if (length == 0)
            {
                break;
            }

            position += (length + 7) & ~7;
        }

        return position;
    }
}
