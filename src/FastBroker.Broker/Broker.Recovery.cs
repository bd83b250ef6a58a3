using FastBroker.Engine;

namespace FastBroker;

/// <summary>Broker state outside the journals brought back in line with them when the broker opens.</summary>
public sealed partial class Broker
{
    private LogRateLimit? _stateFileDamageLog;
    private LogRateLimit? _blankStateFileLog;

    /// <summary>
    /// Logs a line about a state file found damaged while the broker runs (a group's state cut short at its join): the
    /// first at once, then at most one per 10 s with a count of those not logged (<see cref="LogRateLimit"/>), as a
    /// disk that keeps damaging files must not flood the log.
    /// </summary>
    internal void LogStateFileDamage(string line) =>
        LazyInitializer.EnsureInitialized(ref _stateFileDamageLog, () => new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock)).Write(_options.Log, line);

    /// <summary>
    /// Logs a line about a group's state file found holding no state at its join, or a durable subscription's position
    /// file at its subscribe (its data lost: after a power loss, every group's and subscription's at once): the first at
    /// once, then at most one per 10 s with a count of those not logged (<see cref="LogRateLimit"/>), a limit of its
    /// own, apart from <see cref="LogStateFileDamage"/>'s.
    /// </summary>
    internal void LogBlankStateFile(string line) =>
        LazyInitializer.EnsureInitialized(ref _blankStateFileLog, () => new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock)).Write(_options.Log, line);

    /// <summary>
    /// Writes the lines of <see cref="LogStateFileDamage"/> and <see cref="LogBlankStateFile"/> held back since their
    /// last one, with their counts (<see cref="LogRateLimit.Flush"/>), as the broker closes: not lost with it.
    /// </summary>
    private void FlushStateFileLogs()
    {
        Volatile.Read(ref _stateFileDamageLog)?.Flush(_options.Log);
        Volatile.Read(ref _blankStateFileLog)?.Flush(_options.Log);
    }

    /// <summary>
    /// The ack floor of every group with state on disk: until a member joins it again, a group holds retention back
    /// from there (it cannot ack meanwhile, so the value read at open stays right). A state file that holds no state, or
    /// is not a group's (a wrong magic, longer than a group state file, unreadable, also a directory at its path;
    /// <see cref="GroupAckStore.Inspect"/>), holds it from the oldest
    /// message kept (the journal's tail), reported: nothing says what the group acked. One cut short after its ack floor
    /// is reported too (the done marks past its end are lost: what was acked above the floor is delivered again), and
    /// padded as its join would pad it. First each state file is brought
    /// back to its journal's end (<see cref="GroupAckStore.ForgetFrom"/>), before anything is published: after a power
    /// loss cut the journal's tail, new messages reuse the lost offsets, and a floor or done marks beyond the end would
    /// skip them. What that changed goes to <paramref name="reports"/>.
    /// </summary>
    private static Dictionary<(string Topic, string Group), long> RecoverGroupStates(IEnumerable<TopicState> topics, List<string> reports)
    {
        var floors = new Dictionary<(string Topic, string Group), long>();
        foreach (var t in topics)
        {
            var dir = Path.Combine(t.Directory, "groups");
            if (!Directory.Exists(dir))
            {
                continue;
            }

            MappedStateFile.RemoveLeftovers(dir); // creations a crash interrupted before their rename
            if (t.Journal is null)
            {
                continue;
            }

            // Every entry of the name, not only files: a directory (or anything else unreadable) at a state file's path
            // says nothing of what the group acked, so it holds retention from the tail as a damaged file does. Passed
            // over, it held nothing, and retention deleted what the group had not acked before the file was put back.
            foreach (var path in Directory.EnumerateFileSystemEntries(dir, "*.state"))
            {
                var group = Path.GetFileNameWithoutExtension(path);
                var end = t.Head;
                var header = GroupAckStore.Inspect(path);
                if (header.Contents != StateFileContents.State)
                {
                    if (header.Contents == StateFileContents.NoState)
                    {
                        // Its acks are lost: joining starts it at the oldest message kept (not its start position), so
                        // it holds retention from there meanwhile.
                        reports.Add($"{t.Name}: group '{group}': its state file holds no state (empty, zeros, or cut short before its ack floor: lost to a power loss?): the group starts from the oldest message kept, offset {t.Tail}, when it is joined, whatever its start position; messages it had acked are delivered again");
                    }
                    else
                    {
                        // Damaged or foreign: nothing says what the group acked (joining refuses it until the file is
                        // repaired or removed). Its floor may be anywhere, so it holds retention from the oldest
                        // message kept: a repaired file then finds every message it had not acked.
                        reports.Add($"{t.Name}: group '{group}': its state file is not a group state file ({header.Reason}; damaged?): nothing says what the group acked, so until it is joined it holds retention from the oldest message kept, offset {t.Tail}; joining it is refused until the file is repaired or removed");
                    }

                    floors[(t.Name, group)] = t.Tail;
                    continue;
                }

                var floor = header.Slot(GroupAckStore.FloorSlot);
                if (header.Length < GroupAckStore.FileLength())
                {
                    // Its floor holds, but the done marks past the file's end are lost: opening pads them with zeros (not
                    // done), so what the group had acked above its floor is delivered again.
                    reports.Add($"{t.Name}: group '{group}': its state file is cut short ({header.Length} of {GroupAckStore.FileLength()} bytes; its ack floor {floor} is intact): the done marks in its lost part are gone, so messages above the ack floor that the group had acked may be delivered again; the file is padded to its full size");
                }

                try
                {
                    using var store = GroupAckStore.Open(path, initialFloor: 0);
                    var (before, cleared) = store.ForgetFrom(end);
                    if (before > end || cleared > 0)
                    {
                        // On disk before anything is published at those offsets: a state that came back from the page
                        // cache after another power loss would skip the new messages.
                        store.Flush();
                        reports.Add($"{t.Name}: group '{group}': its state was ahead of the journal, which ends at offset {end} (power loss?): ack floor {before} -> {Math.Min(before, end)}, {cleared} done mark(s) at or past {end} cleared; messages published at those offsets again are delivered");
                    }

                    floors[(t.Name, group)] = store.Floor;
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    // Joining the group fails with the same reason; meanwhile it holds retention from what it says.
                    reports.Add($"{t.Name}: group '{group}': state file not checked against the journal: {e.Message}");
                    floors[(t.Name, group)] = Math.Min(floor, end);
                }
            }
        }

        return floors;
    }

    /// <summary>
    /// Every durable subscription's committed positions (<c>subscriptions/*.pos</c>) brought back to their journals'
    /// ends, before anything is published, as <see cref="RecoverGroupStates"/> does for groups. A position can be
    /// ahead of its journal: a standby receives the position files whole before the records it lacks, and may be
    /// promoted before it has them; a power loss may cut a <c>Written</c> journal's tail while the position's page
    /// survived. New messages then take the offsets the journal lacks, and a subscription resuming from the position
    /// it holds would skip them. What that changed goes to <paramref name="reports"/>, with every file that holds no
    /// state or is not a position file (<see cref="PositionStore.Inspect"/>: a wrong magic, an impossible entry count,
    /// longer than a position file, unreadable, also a directory at its path), left as it is: what subscribing under its name does instead; and every short file
    /// whose entries are all whole, padded with zeros to its full size by its open (<see cref="PositionStore.PaddedFrom"/>).
    /// </summary>
    private static void RecoverPositions(string dataDirectory, TopicRegistry topics, List<string> reports)
    {
        var dir = Path.Combine(dataDirectory, "subscriptions");
        if (!Directory.Exists(dir))
        {
            return;
        }

        MappedStateFile.RemoveLeftovers(dir); // creations a crash interrupted before their rename
        foreach (var path in Directory.EnumerateFileSystemEntries(dir, "*.pos")) // a directory in its place too: reported as unreadable
        {
            var name = Path.GetFileNameWithoutExtension(path);
            var header = PositionStore.Inspect(path);
            if (header.Contents == StateFileContents.NoState)
            {
                // Left as it is (opening it would store a header and make it look new): subscribing under that name
                // resumes every topic from the oldest message kept, not from its fallback, and says so again.
                reports.Add($"subscription '{name}': its position file holds no state ({header.Reason}: lost to a power loss?): subscribing under that name resumes every topic from the oldest message kept, whatever its fallback; messages it had committed are delivered again");
                continue;
            }

            if (header.Contents == StateFileContents.Damaged)
            {
                // Left as it is: nothing says what it committed, and subscribing under that name is refused until the
                // file is repaired (it then resumes where it says) or removed (it starts anew from its start position).
                reports.Add($"subscription '{name}': its position file {path} is not a position file ({header.Reason}; damaged?): nothing says what the subscription committed, so subscribing under that name is refused until the file is repaired or removed");
                continue;
            }

            try
            {
                using var store = PositionStore.Open(path);
                if (store.DescribePadding(path) is { } padded)
                {
                    reports.Add($"subscription '{name}': its {padded}");
                }

                foreach (var (topic, committed) in store.All())
                {
                    if (topics.TryGet(topic, out var t) && t.Journal is not null && committed > t.Head)
                    {
                        store.Commit(topic, t.Head);
                        reports.Add($"{topic}: subscription '{name}': its committed position {committed} was ahead of the journal, which ends at offset {t.Head} (a failover before the standby had the records, or a power loss): brought back to {t.Head}; messages published at those offsets are delivered");
                    }
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                // Subscribing under that name fails with the same reason.
                reports.Add($"subscription '{name}': position file not checked against the journals: {e.Message}");
            }
        }
    }
}
