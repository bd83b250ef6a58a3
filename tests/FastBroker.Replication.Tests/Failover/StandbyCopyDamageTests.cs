using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using FastBroker.Journal;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby's copy of a topic damaged on disk while the standby runs (a payload byte of a sealed segment flipped in
/// place: its mapping shows it) is not checked again while it runs (its records were checked as they arrived); the next
/// open of the copy finds it, keeps the damaged segment and every later one aside in <c>damaged/</c> (byte for byte, for
/// an operator's <c>fastbroker journal dump|verify</c>), truncates the copy at the damaged record, and the attach sends
/// the rest again; when they cannot be kept aside (a full disk: here a file where the directory goes), it says so and
/// still cuts. Two in-process nodes on 127.0.0.1, no witness; the standby is stopped and started again on its data
/// directory.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class StandbyCopyDamageTests
{
    private const string Topic = "copydamage.rot";
    private const int Count = 2000;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_copy_damaged_while_the_standby_runs_is_truncated_at_its_next_open_and_copied_again_from_the_primary(bool keepAsideFails)
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        int portA = FreePort.Next(), portB = FreePort.Next();
        ReplicationOptions Node(string id, int port, int peer, NodeRole role) => new()
        {
            NodeId = id,
            DataDirectory = dir.Combine(id),
            Port = port,
            Peer = $"127.0.0.1:{peer}",
            InitialRole = role,
            Log = lines.Enqueue,
        };
        var server = ServerOptions.Default with { Port = 0 };
        await using var a = await ReplicatedNode.StartAsync(BrokerOptions.Default, server, Node("a", portA, portB, NodeRole.Primary));
        Assert.True(await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30)), "a becomes primary");
        var b = await ReplicatedNode.StartAsync(BrokerOptions.Default, server, Node("b", portB, portA, NodeRole.Standby));
        try
        {
            a.Broker!.CreateTopic(Topic, TopicOptions.Default with { SegmentBytes = 64 << 10, MaxMessageBytes = 16 << 10 });
            for (var i = 0; i < Count; i++)
            {
                await a.Broker.PublishAsync(Topic, Encoding.UTF8.GetBytes($"b{i}:").Concat(new byte[100]).ToArray());
            }

            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic", TimeSpan.FromSeconds(30));
            var (segment, victim, _) = RecordDamage.FlipPayloadByte(Path.Combine(dir.Combine("b"), "topics", Topic, "journal"), segmentIndex: 1, recordIndex: 5);

            await b.DisposeAsync();
            var before = FilesFrom(segment); // what the cut destroys, as it is on disk before b's next open
            Assert.True(before.Count >= 3, $"the damaged segment is followed by at least two more: [{string.Join(", ", before.Keys)}]");
            var damagedRoot = Path.Combine(dir.Combine("b"), "damaged");
            if (keepAsideFails)
            {
                await File.WriteAllTextAsync(damagedRoot, "not a directory"); // creating the kept directory fails, as on a full disk
            }

            b = await ReplicatedNode.StartAsync(BrokerOptions.Default, server, Node("b", portB, portA, NodeRole.Standby));
            bool Repaired() => b.Role == NodeRole.Standby && b.Replica is { Connected: true } r && r.JournalOf(Topic)?.NextOffset == Count;
            var clock = Stopwatch.StartNew();
            while (!Repaired() && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(20);
            }

            Assert.True(Repaired(), $"b does not follow a holding the topic 30 s after its start on the damaged copy: b is {b.Role}; log (distinct lines): {string.Join(" | ", lines.Select(l => l.Length > 13 ? l[13..] : l).Distinct().TakeLast(8))}");

            // b's copy holds every record, the damaged one as a sent it (a reader sees each once b's flush made it durable).
            using (var reader = b.Replica!.JournalOf(Topic)!.OpenReader(ReadStart.Beginning))
            {
                clock.Restart();
                for (var i = 0; i < Count;)
                {
                    if (!reader.TryRead(out var record))
                    {
                        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"b's copy reads to offset {i} and no further within 30 s");
                        await Task.Delay(10);
                        continue;
                    }

                    Assert.Equal(i, record.Offset);
                    Assert.StartsWith($"b{i}:", Encoding.UTF8.GetString(record.Payload), StringComparison.Ordinal);
                    i++;
                }
            }

            var damaged = lines.Where(l => l.Contains($"topic '{Topic}': this node's copy is damaged", StringComparison.Ordinal)).ToArray();
            Assert.True(damaged.Length == 1 && damaged[0].Contains(segment, StringComparison.Ordinal) && damaged[0].Contains($"(expected offset {victim})", StringComparison.Ordinal), $"b logged the damage (offset {victim} in {segment}) {damaged.Length} times: [{string.Join(" | ", damaged)}]");
            if (keepAsideFails)
            {
                Assert.True(damaged[0].Contains("could NOT be kept aside", StringComparison.Ordinal), $"b's line does not say the damaged segments could not be kept aside: {damaged[0]}");
                return;
            }

            var kept = Directory.Exists(damagedRoot) ? Directory.GetDirectories(damagedRoot) : [];
            Assert.True(kept.Length == 1 && Path.GetFileName(kept[0]).StartsWith(Topic + "-", StringComparison.Ordinal), $"b kept {kept.Length} directories for the damaged copy in {damagedRoot}: [{string.Join(", ", kept)}]; its line: {damaged[0]}");
            Assert.True(damaged[0].Contains($"kept aside in '{kept[0]}'", StringComparison.Ordinal), $"b's line does not name {kept[0]}: {damaged[0]}");
            var after = Directory.GetFiles(kept[0]).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);
            Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
            foreach (var (name, bytes) in before)
            {
                Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} kept in {kept[0]} differs from the file before the cut");
            }

            await DumpKeptAsync(kept[0], segment, victim);
        }
        finally
        {
            await b.DisposeAsync();
        }
    }

    /// <summary>
    /// <c>fastbroker journal dump</c> of the kept directory prints the damaged segment's records up to the damaged one
    /// and stops there (exit 1), as on any journal; the later segments, dumped without the damaged one before them, print
    /// every record after the damaged segment.
    /// </summary>
    private static async Task DumpKeptAsync(string kept, string segment, long victim)
    {
        var first = long.Parse(Path.GetFileNameWithoutExtension(segment), CultureInfo.InvariantCulture);
        using (var dump = ChildProcess.StartDotnet(Cli.DllPath, "journal", "dump", kept))
        {
            await Eventually.TrueAsync(() => dump.HasExited, "journal dump of the kept directory ends", TimeSpan.FromSeconds(60));
            dump.WaitForExit(TimeSpan.FromSeconds(10));
            Assert.True(dump.ExitCode == 1 && dump.Errors.Contains($"(offset {victim})", StringComparison.Ordinal), $"journal dump {kept}: exit {dump.ExitCode}: {dump.Errors}");
            Assert.Equal(Offsets(first, victim), dump.Lines.Select(l => l.Split(' ')[0]));
        }

        var later = Path.Combine(kept, "later");
        Directory.CreateDirectory(later);
        foreach (var file in Directory.GetFiles(kept).Where(f => !f.StartsWith(Path.ChangeExtension(Path.Combine(kept, Path.GetFileName(segment)), null), StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(later, Path.GetFileName(file)));
        }

        var next = Directory.GetFiles(later, "*.seg").Select(f => long.Parse(Path.GetFileNameWithoutExtension(f), CultureInfo.InvariantCulture)).Min();
        Assert.Equal(Offsets(next, Count), (await Cli.RunAsync("journal", "dump", later)).Select(l => l.Split(' ')[0]));
    }

    private static IEnumerable<string> Offsets(long from, long to)
    {
        for (var i = from; i < to; i++)
        {
            yield return $"offset={i}";
        }
    }

    /// <summary>The segment and index files of <paramref name="segment"/>'s journal from it on, by name.</summary>
    private static Dictionary<string, byte[]> FilesFrom(string segment) =>
        Directory.GetFiles(Path.GetDirectoryName(segment)!)
            .Where(f => f.EndsWith(".seg", StringComparison.Ordinal) || f.EndsWith(".idx", StringComparison.Ordinal))
            .Where(f => string.CompareOrdinal(Path.GetFileName(f), Path.GetFileName(segment)) >= 0 || Path.GetFileNameWithoutExtension(f) == Path.GetFileNameWithoutExtension(segment))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes, StringComparer.Ordinal);
}
