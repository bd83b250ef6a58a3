using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

// STATE_GONE: the primary no longer has a state file, so this node's copy goes too.
internal sealed partial class StandbyReplica
{
    private LogRateLimit? _goneLogLimit;

    private LogRateLimit GoneLog => _goneLogLimit ??= new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock);

    /// <summary>
    /// The primary no longer has a state file (<see cref="FrameKind.StateGone"/>: a durable subscription's position
    /// file or a group's state removed there, or a copy this node reported at the attach that the primary lacks): this
    /// node's mapping of its copy is closed and the copy removed, so that a promotion does not bring back the
    /// subscription or group with its old position. The removal's directory entry is synced before the next STATE_ACK,
    /// as a new copy's is. Logged (the first at once, then at most one line per 10 s with a count of those not logged:
    /// a <see cref="LogRateLimit"/> of its own).
    /// </summary>
    private void OnStateGone(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var relative = r.Str();
        if (r.Remaining != 0 || !StateFiles.IsStatePath(relative))
        {
            throw new InvalidDataException($"state file path '{relative}' to remove refused");
        }

        // Closed first (msynced if a sync was pending): a mapping of the removed file must not take later updates.
        if (_positionStores.Remove(relative, out var store))
        {
            store.Dispose();
        }

        if (_groupStates.Remove(relative, out var group))
        {
            group.Dispose();
        }

        _stateWritten.Positions.Remove(relative);
        _stateWritten.Groups.Remove(relative);
        var path = Path.Combine(_options.DataDirectory, relative);
        if (StateFiles.IsGone(path))
        {
            return;
        }

        File.Delete(path);
        _stateWritten.Directories.Add(Path.GetDirectoryName(relative) ?? ""); // the removal, synced before the STATE_ACK
        StateTrace?.Invoke("remove", relative);
        GoneLog.Write(_options.Log, $"replication: state file {relative} removed: the primary no longer has it");
    }
}
