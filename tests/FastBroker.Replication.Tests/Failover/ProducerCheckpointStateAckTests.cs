using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A standby holds a received <c>producers.state</c> in memory while its journal copy is behind the file's capture
/// points; its STATE_ACK says the state a version covers is on its disk, and the primary takes it so (a hand-over's
/// wait, a commit or a new epoch in a standby ack mode). So a version received after a file held must not be
/// acknowledged before that file is installed: each attach here sends the file (b's copy differs) and then the attach's
/// version (and a hand-over's request sends them on the link up), while b's copy of the topic is held at 110 by ending its link at every RECORDS frame of it past there
/// (<c>StandbyReplica.RecordsArriving</c>). The standby's steps are read through its trace
/// (<c>StandbyReplica.StateTrace</c>). Two in-process nodes on 127.0.0.1, no witness.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class ProducerCheckpointStateAckTests
{
    private const string Topic = "t";
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E17;
    private const ulong Busy = 0x0B0B_0B0B_0B0B_0B18;
    private const int Later = 9_000; // Busy's records after the copy's end: more than a capture interval
    private const int Attaches = 2; // attaches whose version arrived, and the wake-up ended, while the file was held

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_STATE_ACK_never_covers_a_producers_state_the_standby_holds_back()
    {
        using var dir = new TempDirectory();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default);
        await using (a)
        await using (b)
        {
            var sink = new Sink();
            for (var i = 0UL; i < 10; i++)
            {
                Publish(a.Broker!, sink, Early, i);
            }

            for (var i = 0UL; i < 100; i++)
            {
                Publish(a.Broker!, sink, Busy, i);
            }

            await Eventually.TrueAsync(() => sink.Count == 110, "every publish is confirmed", s_deadline);
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b holds the topic durably", s_deadline);

            var replica = b.Replica!;
            var steps = new List<(string Step, string What)>();
            List<(string Step, string What)> Steps()
            {
                lock (steps)
                {
                    return [.. steps];
                }
            }

            replica.StateTrace = (step, what) =>
            {
                lock (steps)
                {
                    steps.Add((step, what));
                }
            };

            // From here b's copy of t ends at 110: every RECORDS frame of t ends its link, unwritten. Before it does, what
            // the receive thread handed off is left to reach the durable thread (which traces its STATE_ACK then), so
            // the link's end does not drop an acknowledgement the standby was about to send.
            replica.RecordsArriving = (topic, first, _) =>
            {
                if (topic != Topic)
                {
                    return;
                }

                var waited = System.Diagnostics.Stopwatch.StartNew();
                while (HandOffPending(Steps()) && waited.Elapsed < TimeSpan.FromSeconds(10))
                {
                    Thread.Sleep(1); // polling a condition with a deadline, on the standby's receive thread
                }

                throw new InvalidDataException($"held by the test: records of '{topic}' from {first}");
            };

            Publish(a.Broker!, sink, Early, 10); // offset 110
            for (var i = 100UL; i < 100 + Later; i++)
            {
                Publish(a.Broker!, sink, Busy, i);
            }

            await Eventually.TrueAsync(() => sink.Count == 111 + Later, "every publish is confirmed (local acks)", s_deadline);
            var primaryCheckpoint = Path.Combine(dir.Combine("a"), ProducerCheckpoint.FileName);
            await Eventually.TrueAsync(() => NamesAt(primaryCheckpoint, Early, 10), "a's producers.state names Early at its sequence 10", s_deadline);

            // Each attach sends a's file (b holds it: its copy of t is behind the file's point), then the attach's version.
            // And a hand-over's request for the state files (a's file, then a version) after the file is held: each one's
            // version comes on the link up then or on the next attach, once b held the file.
            var gate = a.Broker!.Replication!;
            var requested = 0L;
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (Check(Steps()).Episodes < Attaches)
            {
                if (Steps().Any(s => s.Step == "hold") && Received(Steps()) >= requested)
                {
                    requested = gate.RequestStateFiles();
                }

                Assert.True(
                    waited.Elapsed < s_deadline,
                    $"within {s_deadline.TotalSeconds:0} s: {Attaches} attaches of b received a state version while holding a's producers.state, and ended that wake-up before t's records; "
                    + $"b's steps: {string.Join(", ", Steps().Where(s => s.Step is not ("write" or "fsync" or "fsync-dir" or "store" or "msync")).TakeLast(60).Select(s => $"{s.Step} {s.What}"))}");
                await Task.Delay(10); // polling a condition with a deadline
            }
            var (_, violations) = Check(Steps());
            Assert.True(
                violations.Count == 0,
                $"b acknowledged state versions it received while it held a's producers.state in memory, not on its disk: {string.Join("; ", violations)}");

            // Once b's copy reaches the file's points, the file is installed and the versions are acknowledged again.
            replica.RecordsArriving = null;
            await Eventually.TrueAsync(() => NodeStatus.Parse(a.GetStatusJson()).StandbyCaughtUp(Topic), "b catches up", s_deadline);
            var copy = Path.Combine(dir.Combine("b"), ProducerCheckpoint.FileName);
            await Eventually.TrueAsync(() => NamesAt(copy, Early, 10), "b installs a's producers.state once its copy holds Early's 10", s_deadline);
            var version = gate.RequestStateFiles();
            await Eventually.TrueAsync(() => gate.StateApplied >= version, $"b acknowledges state version {version}", s_deadline);
        }
    }

    /// <summary>The newest state version the standby received.</summary>
    private static long Received(List<(string Step, string What)> steps) =>
        steps.Where(s => s.Step == "positions").Select(s => long.Parse(s.What, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();

    /// <summary>Whether the receive thread handed off state that the durable thread has not yet taken.</summary>
    private static bool HandOffPending(List<(string Step, string What)> steps) =>
        steps.FindLastIndex(s => s.Step == "handoff") > steps.FindLastIndex(s => s.Step == "batch");

    /// <summary>
    /// Reads the trace: each <c>producers.state</c> held (until one is renamed in) with the newest version received
    /// before it; a version received after it is either withheld at the end of its wake-up (an episode) or acknowledged
    /// (an episode, and a violation).
    /// </summary>
    private static (int Episodes, List<string> Violations) Check(List<(string Step, string What)> steps)
    {
        var violations = new List<string>();
        var episodes = 0;
        long received = 0, heldAfter = -1;
        var counted = new HashSet<long>();
        foreach (var (step, what) in steps)
        {
            switch (step)
            {
                case "positions":
                    received = Math.Max(received, long.Parse(what, CultureInfo.InvariantCulture));
                    break;
                case "hold" when what == ProducerCheckpoint.FileName:
                    heldAfter = heldAfter < 0 ? received : heldAfter;
                    break;
                case "rename" when what == ProducerCheckpoint.FileName:
                    heldAfter = -1;
                    break;
                case "withheld" when heldAfter >= 0 && long.Parse(what, CultureInfo.InvariantCulture) > heldAfter:
                    if (counted.Add(long.Parse(what, CultureInfo.InvariantCulture)))
                    {
                        episodes++;
                    }

                    break;
                case "ack" when heldAfter >= 0 && long.Parse(what, CultureInfo.InvariantCulture) > heldAfter:
                    var version = long.Parse(what, CultureInfo.InvariantCulture);
                    if (counted.Add(version))
                    {
                        episodes++;
                    }

                    violations.Add($"STATE_ACK {version} while holding the file received after version {heldAfter}");
                    break;
            }
        }

        return (episodes, violations);
    }

    /// <summary>Whether the checkpoint at <paramref name="path"/> has an entry of <paramref name="producer"/> whose highest sequence is <paramref name="sequence"/>.</summary>
    private static bool NamesAt(string path, ulong producer, ulong sequence)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException)
        {
            return false;
        }

        var entry = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(entry, producer);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(8), sequence);
        return bytes.AsSpan().IndexOf(entry) >= 0;
    }

    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            Assert.True(broker.WaitForPublishRoomAsync(1).AsTask().Wait(TimeSpan.FromSeconds(30)), "room in the input ring within 30 s");
        }

        claim.Add(Encoding.UTF8.GetBytes(Topic), default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), new PublishParameters(ProducerId: producer, ProducerSequence: sequence), sink, sequence);
        claim.Commit();
    }

    private sealed class Sink : IPublishConfirmSink
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Interlocked.Increment(ref _count);

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Interlocked.Increment(ref _count);
    }
}
