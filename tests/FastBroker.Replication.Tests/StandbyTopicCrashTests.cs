using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Replication;
using FastBroker.Replication.Internal;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests;

/// <summary>
/// What a kill of the standby in the middle of a topic copy's creation (a TOPIC from the primary), deletion (a
/// WELCOME's delete directive) or reset (a WELCOME's reset directive: the copy restarted at the primary's first offset)
/// leaves in its data directory, and how the node opens it next: as a standby again (then attached to the primary,
/// which announces the topic again) and as a promoted broker. Each step on disk is stopped at in turn
/// (<see cref="StandbyReplica.FileStep"/>: the test throws there, as a kill would; a recursive delete is stopped with
/// all but the journal's last segment gone, or all but its first and last, the orders that leave a hole at the start or
/// in the middle), on real files, the standby driven over a real socket on 127.0.0.1 by a stand-in primary. Every
/// state must open: a copy whole (the old one or the new one), or nothing of it left.
/// </summary>
public sealed class StandbyTopicCrashTests(ITestOutputHelper output)
{
    private const long From = 5; // the primary's first offset of the created topic: its retention dropped 0 to 4
    private const long Restart = 1000; // the primary's first offset of a reset copy: it no longer has what the copy holds
    private static readonly TopicOptions s_settings = TopicOptions.Default with { SegmentBytes = 1L << 16, MaxMessageBytes = 8192 };

    [Fact]
    public async Task A_kill_at_any_step_of_a_copy_s_creation_leaves_the_copy_whole_or_nothing_and_both_opens_handle_it()
    {
        var steps = await Steps(_ => Task.CompletedTask, (stand, replica) => stand.Serve(replica, [], [("fresh", From)]));
        Assert.NotEmpty(steps);
        output.WriteLine(string.Join('\n', steps));
        await EachKill(steps, CreationRound);
    }

    private static async Task CreationRound(int kill, string at)
    {
        using var dir = new TempDirectory();
        using (var stand = new StandInPrimary())
        {
            var replica = Standby(dir.Path, stand, out _);
            replica.FileStep = KillAt(kill);
            try
            {
                stand.Serve(replica, [], [("fresh", From)]);
            }
            finally
            {
                Close(replica);
            }
        }

        // Promoted: the copy is opened whole (from the primary's first offset) or not at all, nothing left on disk.
        using (var promoted = Copy(dir.Path))
        {
            await using var broker = OpenPromoted(promoted.Path, at);
            var topic = broker.GetSnapshot().Topics.SingleOrDefault(t => t.Name == "fresh");
            if (topic is not null)
            {
                Assert.True(topic.Tail == From && topic.Head == From, $"{at}: the promoted broker opened 'fresh' at offsets {topic.Tail} to {topic.Head}; the primary's copy starts at {From}");
            }
            else
            {
                AssertGone(promoted.Path, "fresh", at, "the promoted open");
            }
        }

        // Standby again, then attached: the primary announces the topic again and the copy starts where it does.
        using (var stand = new StandInPrimary())
        {
            var replica = Standby(dir.Path, stand, out var log);
            try
            {
                if (replica.JournalOf("fresh") is { } reopened)
                {
                    Assert.True(reopened.FirstOffset == From && reopened.NextOffset == From, $"{at}: the standby reopened 'fresh' at offsets {reopened.FirstOffset} to {reopened.NextOffset}; the primary's copy starts at {From}");
                }
                else
                {
                    AssertGone(dir.Path, "fresh", at, $"the standby's open (log: {string.Join(" | ", log)})");
                }

                stand.Serve(replica, [], [("fresh", From)]);
                var copy = replica.JournalOf("fresh");
                Assert.True(copy is { FirstOffset: From, NextOffset: From }, $"{at}: after the next attach the copy of 'fresh' is at {copy?.FirstOffset} to {copy?.NextOffset}, not at {From}");
            }
            finally
            {
                Close(replica);
            }
        }

        Assert.Equal([TopicRegistry.JournalDirectory, TopicRegistry.MetaFile], Names(Path.Combine(dir.Path, "topics", "fresh")));
    }

    [Fact]
    public async Task A_kill_at_any_step_of_a_copy_s_deletion_leaves_the_copy_whole_or_nothing_and_both_opens_handle_it()
    {
        var steps = await Steps(CopyWithRecords, (stand, replica) => stand.Serve(replica, [("gone", TopicAction.Delete, 0)], []));
        Assert.Contains(steps, s => s.StartsWith("delete recursively ", StringComparison.Ordinal));
        output.WriteLine(string.Join('\n', steps));
        await EachKill(steps, DeletionRound);
    }

    private static async Task DeletionRound(int kill, string at)
    {
        using var dir = new TempDirectory();
        var records = await CopyWithRecords(dir.Path);
        using (var stand = new StandInPrimary())
        {
            var replica = Standby(dir.Path, stand, out _);
            Assert.Equal(records, replica.JournalOf("gone")?.NextOffset);
            replica.FileStep = KillAt(kill);
            try
            {
                stand.Serve(replica, [("gone", TopicAction.Delete, 0)], []);
            }
            finally
            {
                Close(replica);
            }
        }

        // Promoted: it opens (a journal without settings would be refused), with the copy whole or without it.
        using (var promoted = Copy(dir.Path))
        {
            await using var broker = OpenPromoted(promoted.Path, at);
            Assert.Contains(broker.GetSnapshot().Topics, t => t.Name == "kept" && t.Head == 1);
            var topic = broker.GetSnapshot().Topics.SingleOrDefault(t => t.Name == "gone");
            if (topic is not null)
            {
                Assert.True(topic.Tail == 0 && topic.Head == records, $"{at}: the promoted broker opened 'gone' at offsets {topic.Tail} to {topic.Head}, not the whole copy (0 to {records})");
                AssertGroupState(promoted.Path, at);
            }
            else
            {
                AssertGone(promoted.Path, "gone", at, "the promoted open");
            }
        }

        // Standby again, then attached to a primary that has created the topic anew: a fresh copy, nothing old in it.
        using (var stand = new StandInPrimary())
        {
            var replica = Standby(dir.Path, stand, out var log);
            try
            {
                if (replica.JournalOf("gone") is { } reopened)
                {
                    Assert.True(reopened.FirstOffset == 0 && reopened.NextOffset == records, $"{at}: the standby reopened 'gone' at offsets {reopened.FirstOffset} to {reopened.NextOffset}, not the whole copy (0 to {records})");
                    stand.Serve(replica, [("gone", TopicAction.Delete, 0)], []);
                }
                else
                {
                    AssertGone(dir.Path, "gone", at, $"the standby's open (log: {string.Join(" | ", log)})");
                }

                stand.Serve(replica, [], [("gone", 0)]);
                var copy = replica.JournalOf("gone");
                Assert.True(copy is { FirstOffset: 0, NextOffset: 0 }, $"{at}: the copy of 'gone' created again holds offsets {copy?.FirstOffset} to {copy?.NextOffset}, not nothing");
                Assert.Equal(1, replica.JournalOf("kept")?.NextOffset);
            }
            finally
            {
                Close(replica);
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_kill_at_any_step_of_a_copy_s_reset_leaves_the_old_copy_the_new_one_or_nothing_and_both_opens_handle_it(bool middleGone)
    {
        var steps = await Steps(CopyWithRecords, (stand, replica) => stand.Serve(replica, [("gone", TopicAction.Reset, Restart)], [("gone", Restart)]));
        Assert.Contains(steps, s => s.StartsWith("delete recursively ", StringComparison.Ordinal));
        output.WriteLine(string.Join('\n', steps));
        await EachKill(steps, (kill, at) => ResetRound(kill, middleGone ? at + " (the journal's middle deleted)" : at, middleGone));
    }

    private static async Task ResetRound(int kill, string at, bool middleGone)
    {
        using var dir = new TempDirectory();
        var records = await CopyWithRecords(dir.Path);
        using (var stand = new StandInPrimary())
        {
            var replica = Standby(dir.Path, stand, out _);
            Assert.Equal(records, replica.JournalOf("gone")?.NextOffset);
            replica.FileStep = KillAt(kill, middleGone);
            try
            {
                stand.Serve(replica, [("gone", TopicAction.Reset, Restart)], [("gone", Restart)]);
            }
            finally
            {
                Close(replica);
            }
        }

        // Promoted: it opens, with the old copy whole, the new one (at the primary's first offset) or neither.
        using (var promoted = Copy(dir.Path))
        {
            await using var broker = OpenPromoted(promoted.Path, at);
            Assert.Contains(broker.GetSnapshot().Topics, t => t.Name == "kept" && t.Head == 1);
            if (broker.GetSnapshot().Topics.SingleOrDefault(t => t.Name == "gone") is { } topic)
            {
                Assert.True((topic.Tail, topic.Head) == (0, records) || (topic.Tail, topic.Head) == (Restart, Restart), $"{at}: the promoted broker opened 'gone' at offsets {topic.Tail} to {topic.Head}: neither the old copy (0 to {records}) nor the new one (at {Restart})");
                if (topic.Tail == 0)
                {
                    AssertGroupState(promoted.Path, at);
                }
            }
            else
            {
                AssertGone(promoted.Path, "gone", at, "the promoted open");
            }
        }

        // Standby again, then attached: the primary resets an old copy again or announces a missing one; the copy starts anew.
        using (var stand = new StandInPrimary())
        {
            var replica = Standby(dir.Path, stand, out var log);
            try
            {
                (string, TopicAction, long)[] directives = [];
                if (replica.JournalOf("gone") is { } reopened)
                {
                    var (first, next) = (reopened.FirstOffset, reopened.NextOffset);
                    Assert.True((first, next) == (0, records) || (first, next) == (Restart, Restart), $"{at}: the standby reopened 'gone' at offsets {first} to {next}: neither the old copy (0 to {records}) nor the new one (at {Restart})");
                    directives = first == 0 ? [("gone", TopicAction.Reset, Restart)] : [];
                }
                else
                {
                    AssertGone(dir.Path, "gone", at, $"the standby's open (log: {string.Join(" | ", log)})");
                }

                stand.Serve(replica, directives, [("gone", Restart)]);
                var copy = replica.JournalOf("gone");
                Assert.True(copy is { FirstOffset: Restart, NextOffset: Restart }, $"{at}: after the next attach the copy of 'gone' is at {copy?.FirstOffset} to {copy?.NextOffset}, not at {Restart}");
                Assert.Equal(1, replica.JournalOf("kept")?.NextOffset);
            }
            finally
            {
                Close(replica);
            }
        }

        // Nothing of a creation or deletion left beside the copy (a group's state comes from the primary, as any state file).
        Assert.Equal([TopicRegistry.JournalDirectory, TopicRegistry.MetaFile], Names(Path.Combine(dir.Path, "topics", "gone")).Where(n => n != "groups"));
    }

    /// <summary>Runs <paramref name="round"/> with a kill before each step and with none; fails with what every round found.</summary>
    private static async Task EachKill(List<string> steps, Func<int, string, Task> round)
    {
        var failures = new List<string>();
        for (var kill = 0; kill <= steps.Count; kill++)
        {
            try
            {
                await round(kill, kill < steps.Count ? $"a kill before '{steps[kill]}'" : "no kill");
            }
            catch (Xunit.Sdk.XunitException e)
            {
                failures.Add(e.Message);
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {steps.Count + 1} rounds:\n{string.Join("\n", failures)}");
    }

    /// <summary>The steps on disk of <paramref name="act"/> on a standby over <paramref name="prepare"/>d data, none stopped.</summary>
    private static async Task<List<string>> Steps(Func<string, Task> prepare, Action<StandInPrimary, StandbyReplica> act)
    {
        using var dir = new TempDirectory();
        await prepare(dir.Path);
        using var stand = new StandInPrimary();
        var replica = Standby(dir.Path, stand, out _);
        var steps = new List<string>();
        replica.FileStep = what => steps.Add(what.Replace(dir.Path, "<data>", StringComparison.Ordinal));
        try
        {
            act(stand, replica);
        }
        finally
        {
            Close(replica);
        }

        return steps;
    }

    /// <summary>
    /// Stops the standby before its step <paramref name="kill"/> (none past the last): a recursive delete stopped there
    /// has removed every file under its path but the journal's last segment (the order that leaves the least), and
    /// with <paramref name="middleGone"/> its first segment too (its middle gone: Directory.Delete's order is not defined).
    /// </summary>
    private static Action<string> KillAt(int kill, bool middleGone = false)
    {
        var step = 0;
        return what =>
        {
            if (step++ != kill)
            {
                return;
            }

            const string Recursive = "delete recursively ";
            if (what.StartsWith(Recursive, StringComparison.Ordinal))
            {
                var files = Directory.GetFiles(what[Recursive.Length..], "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
                var segments = files.Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == TopicRegistry.JournalDirectory && f.EndsWith(".seg", StringComparison.Ordinal)).ToList();
                string?[] kept = segments.Count == 0 ? [files.LastOrDefault()] : middleGone ? [segments[0], segments[^1]] : [segments[^1]];
                foreach (var file in files.Where(f => !kept.Contains(f)))
                {
                    File.Delete(file);
                }
            }

            throw new IOException($"killed before '{what}'");
        };
    }

    /// <summary>A copy of 'gone' holding records over several segments and a group's state, and one of 'kept'.</summary>
    private static async Task<long> CopyWithRecords(string dataDirectory)
    {
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dataDirectory });
        broker.CreateTopic("gone", s_settings);
        broker.CreateTopic("kept", s_settings);
        await broker.PublishAsync("kept", new byte[] { 1 });
        var records = 0L;
        while (Directory.GetFiles(Path.Combine(dataDirectory, "topics", "gone", TopicRegistry.JournalDirectory), "*.seg").Length < 3)
        {
            records = await broker.PublishAsync("gone", new byte[4000]) + 1;
        }

        broker.JoinGroup("gone", "work").Dispose();
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(dataDirectory, "topics", "gone", "groups")));
        return records;
    }

    private static StandbyReplica Standby(string dataDirectory, StandInPrimary stand, out ConcurrentQueue<string> log)
    {
        log = new ConcurrentQueue<string>();
        // A heartbeat timeout long enough for a loaded machine: the stand-in sends no heartbeats, only what it is told.
        var options = new ReplicationOptions { NodeId = "b", DataDirectory = dataDirectory, Peer = stand.Address, HeartbeatTimeout = TimeSpan.FromSeconds(30), Log = log.Enqueue };
        return new StandbyReplica(options, NodeState.Load(dataDirectory), verifySealedSegments: true);
    }

    private static void Close(StandbyReplica replica)
    {
        replica.Dispose();
        replica.CloseJournals();
    }

    private static Broker OpenPromoted(string dataDirectory, string at)
    {
        try
        {
            return Broker.Open(BrokerOptions.Default with { DataDirectory = dataDirectory }, null);
        }
        catch (BrokerException e)
        {
            Assert.Fail($"{at}: the promoted broker does not open: {e.Message}");
            throw;
        }
    }

    /// <summary>
    /// The old copy, opened by a promoted broker, has its group's state: without it the group is a new one to that broker
    /// (started at its start position, not where it was: what it acked delivered again, or what it had not skipped).
    /// </summary>
    private static void AssertGroupState(string dataDirectory, string at)
    {
        var groups = Path.Combine(dataDirectory, "topics", "gone", "groups");
        Assert.True(Directory.Exists(groups) && Directory.GetFiles(groups).Length > 0, $"{at}: the promoted broker opened the old copy of 'gone' without its group's state (its group 'work' would be taken as a new one, started at its start position instead of where it was)");
    }

    private static void AssertGone(string dataDirectory, string topic, string at, string open)
    {
        var dir = Path.Combine(dataDirectory, "topics", topic);
        Assert.False(Directory.Exists(dir), $"{at}: after {open}, left on disk: {dir} holding [{(Directory.Exists(dir) ? string.Join(", ", Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(dir, p))) : "")}]");
    }

    /// <summary>A copy of the data directory (the promoted open changes what it opens; the standby's reopen is tested on the original).</summary>
    private static TempDirectory Copy(string dataDirectory)
    {
        var copy = new TempDirectory();
        foreach (var d in Directory.GetDirectories(dataDirectory, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(copy.Path, Path.GetRelativePath(dataDirectory, d)));
        }

        foreach (var f in Directory.GetFiles(dataDirectory, "*", SearchOption.AllDirectories))
        {
            File.Copy(f, Path.Combine(copy.Path, Path.GetRelativePath(dataDirectory, f)));
        }

        return copy;
    }

    private static string[] Names(string dir) => [.. Directory.GetFileSystemEntries(dir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal)];

    /// <summary>
    /// A primary as far as one link needs: takes the standby's HELLO, answers a WELCOME at epoch 1 with the given
    /// directives, announces the given topics (ids from 0, <see cref="s_settings"/>), and closes its side, so the
    /// standby's <see cref="StandbyReplica.Run"/> returns once it has acted on all of it.
    /// </summary>
    private sealed class StandInPrimary : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

        public StandInPrimary() => _listener.Start();

        public string Address => "127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        public string Serve(StandbyReplica replica, (string Topic, TopicAction Action, long Offset)[] directives, (string Topic, long From)[] topics)
        {
            var run = Task.Run(() => replica.Run(PeerAddress.Parse(Address, "peer"), out _));
            var accepted = _listener.AcceptSocketAsync();
            Assert.True(Task.WaitAny(new Task[] { accepted, run }, TimeSpan.FromSeconds(30)) == 0, $"the standby connects ({(run.IsCompleted ? run.Result : "still connecting")})");
            using var socket = accepted.Result;
            var input = new FrameInput(socket, 1 << 20);
            Assert.True(input.Read(out var kind, out _) && kind == FrameKind.Hello, "the standby says HELLO");
            var f = new FrameBuffer(4096);
            f.Begin(FrameKind.Welcome).I64(1).Str("stand-in").Str("1 #stand-in@0\n").U32((uint)directives.Length);
            foreach (var (topic, action, offset) in directives)
            {
                f.Str(topic).U8((byte)action).I64(offset);
            }

            f.End();
            for (var i = 0; i < topics.Length; i++)
            {
                f.Begin(FrameKind.Topic).U32((uint)i).Str(topics[i].Topic).Str(TopicRegistry.FormatMeta(s_settings)).I64(topics[i].From).End();
            }

            f.SendTo(socket);
            socket.Shutdown(SocketShutdown.Send);
            Assert.True(run.Wait(TimeSpan.FromSeconds(30)), "the standby acts on the frames and ends the link");
            return run.Result;
        }

        public void Dispose() => _listener.Dispose();
    }
}
