using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

// STATE_GONE: the primary no longer has a state file, so this node's copy goes too.
internal sealed partial class StandbyReplica
{
    private LogRateLimit? _goneLogLimit;
    private HashSet<string>? _unreportedCopies; // receive thread: copies the attach's STATE_DIGESTS left out, until its snapshot ends

    private LogRateLimit GoneLog => _goneLogLimit ??= new LogRateLimit(LogRateLimit.DefaultInterval, _options.LogClock);

    /// <summary>
    /// Writes the lines of the state files' rate-limited logs (damaged, blank and padded copies, removed ones) held
    /// back since their last one, with their counts (<see cref="T:FastBroker.Engine.LogRateLimit"/>'s <c>Flush</c>), as
    /// the replica ends: not lost with it.
    /// </summary>
    private void FlushStateLogs()
    {
        foreach (var limit in (ReadOnlySpan<LogRateLimit?>)[Volatile.Read(ref _damageLogLimit), Volatile.Read(ref _blankLogLimit), Volatile.Read(ref _paddedLogLimit), Volatile.Read(ref _goneLogLimit)])
        {
            limit?.Flush(_options.Log);
        }
    }

    /// <summary>
    /// The primary no longer has a state file (<see cref="FrameKind.StateGone"/>: a durable subscription's position
    /// file or a group's state removed there, a copy this node reported at the attach that the primary lacks, or one it
    /// asked for after the attach, <see cref="AskForUnreportedCopies"/>): this
    /// node's mapping of its copy is closed and the copy removed, so that a promotion does not bring back the
    /// subscription or group with its old position. The removal's directory entry is synced before the next STATE_ACK,
    /// as a new copy's is. Logged (the first at once, then at most one line per 10 s with a count of those not logged:
    /// a <see cref="T:FastBroker.Engine.LogRateLimit"/> of its own).
    /// </summary>
    private void OnStateGone(ReadOnlySpan<byte> body)
    {
        var r = new FrameReader(body);
        var relative = r.Str();
        if (r.Remaining != 0 || !StateFiles.IsStatePath(relative))
        {
            throw new InvalidDataException($"state file path '{relative}' to remove refused");
        }

        _unreportedCopies?.Remove(relative);
        if (relative == ProducerCheckpoint.FileName)
        {
            DropHeldCheckpoints();
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

    /// <summary>
    /// Right after the STATE_DIGESTS: the copies this node holds that it left out (<paramref name="digests"/>; all of
    /// them when null): unreadable, larger than a frame, or past the frame's room. The primary sends whole, before the
    /// POSITIONS frame that ends the attach's snapshot, each of its files the standby did not report; a copy left out
    /// that no STATE frame replaced nor STATE_GONE removed by then is one the primary did not send
    /// (<see cref="AskForUnreportedCopies"/>).
    /// </summary>
    private void NoteUnreportedCopies(List<StateDigests.Digest>? digests)
    {
        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in digests ?? [])
        {
            reported.Add(d.Relative);
        }

        HashSet<string>? unreported = null;
        try
        {
            foreach (var (relative, _) in StateFiles.EnumerateInfo(_options.DataDirectory))
            {
                var key = relative.Replace('\\', '/');
                if (!reported.Contains(key))
                {
                    (unreported ??= new HashSet<string>(StringComparer.Ordinal)).Add(key);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not listed: the copies left out stay until an attach lists them.
        }

        _unreportedCopies = unreported;
    }

    /// <summary>
    /// Receive thread, at each POSITIONS frame: after the attach's snapshot (its first), asks the primary
    /// (<see cref="FrameKind.StateWanted"/>) for each copy the STATE_DIGESTS left out and the snapshot did not send:
    /// the primary sends the file whole if it has it and can read it, and STATE_GONE if its file system says there is
    /// none, so that such a copy is removed as a reported one is. Each is asked for once per attach.
    /// </summary>
    private void AskForUnreportedCopies()
    {
        if (_unreportedCopies is not { } unreported)
        {
            return;
        }

        _unreportedCopies = null;
        foreach (var relative in unreported)
        {
            if (File.Exists(Path.Combine(_options.DataDirectory, relative)))
            {
                AskForStateFile(relative);
            }
        }
    }
}
