using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

/// <summary>
/// The primary's <c>producers.state</c> (<see cref="ProducerCheckpoint"/>), sent whole at each attach and when it
/// changes, is installed as this node's copy only once this node's journal copies reach the file's capture points: a
/// promoted standby then opens with a file each of whose entries its journals hold (or at least the previous one's
/// record), and rescans each topic from a point its copy holds. A file received while the copies are still behind it
/// (catching up after an attach, or trailing a busy primary) is held in memory, the copy on disk kept, and installed at
/// the end of the first wake-up of the receive thread whose records reach it; the oldest one held and the newest one
/// received since are kept, so that a copy that always trails the newest still installs the older one. A node with no
/// copy installs the file at once (the open rescans every topic from its first record then: <c>Broker</c>'s producer
/// recovery), as it does a file without capture points. What is held goes when the link ends (the next attach sends the
/// primary's file again, the copy on disk differing) and when the primary removes the file.
/// A STATE_ACK never covers a file held: a state version the primary sent after it (a hand-over's, an attach's, a
/// commit's) is acknowledged only once that file, or one received after it, is installed and its directory synced
/// (<see cref="AckableVersion"/>), so the primary never counts the standby as holding a <c>producers.state</c> it keeps
/// only in memory.
/// </summary>
internal sealed partial class StandbyReplica
{
    private Held? _heldCheckpoint; // receive thread: the oldest producers.state received and not yet installed
    private Held? _newestCheckpoint; // receive thread: the newest received after it, not yet installed
    private long _positionsVersion; // receive thread: the newest state version (POSITIONS frame) received on this link
    private long _handedOffVersion; // receive thread: the newest version handed to the durable thread to acknowledge on this link
    private long _withheldVersion; // receive thread: the newest version traced as withheld on this link

    /// <summary>
    /// Receive thread: the newest state version received on this link that a STATE_ACK may cover: every one while no
    /// <c>producers.state</c> is held, else only those received before the oldest file held arrived (or before the
    /// file it stands for: a newest one replaced by a later one passes its limit on), since the state a later version
    /// covers includes that file, which is not on this node's disk yet.
    /// </summary>
    private long AckableVersion => _heldCheckpoint is { } held ? Math.Min(_positionsVersion, held.AckUpTo) : _positionsVersion;

    /// <summary>A <c>producers.state</c> from the primary: installed now if this node's copies reach its capture points (or it has none), else held.</summary>
    private void OnProducerCheckpoint(string relative, string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        var file = new Held(relative, path, copy, ProducerCheckpoint.CapturePointsOf(copy));
        if (!File.Exists(path) || Reached(file))
        {
            (_heldCheckpoint, _newestCheckpoint) = (null, null);
            Install(file);
            return;
        }

        // The versions received from here on cover this file: none is acknowledged before it (or a newer one) is installed.
        if (_heldCheckpoint is null)
        {
            _heldCheckpoint = file with { AckUpTo = _positionsVersion };
        }
        else
        {
            _newestCheckpoint = file with { AckUpTo = _newestCheckpoint?.AckUpTo ?? _positionsVersion };
        }

        StateTrace?.Invoke("hold", relative);
    }

    /// <summary>Receive thread, at the end of a wake-up (its records written): installs the newest held file the copies now reach.</summary>
    private void InstallReachedCheckpoint()
    {
        if (_heldCheckpoint is not { } held)
        {
            return;
        }

        if (_newestCheckpoint is { } newest && Reached(newest))
        {
            (_heldCheckpoint, _newestCheckpoint) = (null, null);
            Install(newest);
        }
        else if (Reached(held))
        {
            (_heldCheckpoint, _newestCheckpoint) = (_newestCheckpoint, null);
            Install(held);
        }
    }

    /// <summary>Drops what is held (the link ended, or the primary removed the file: its removal is synced before the next STATE_ACK).</summary>
    private void DropHeldCheckpoints() => (_heldCheckpoint, _newestCheckpoint) = (null, null);

    /// <summary>
    /// Receive thread, at the end of a wake-up (after <see cref="InstallReachedCheckpoint"/>): the version the durable
    /// thread is to acknowledge, once what this wake-up wrote is synced, if it is newer than the last one handed off.
    /// </summary>
    private void AddAckableVersion()
    {
        var ackable = AckableVersion;
        if (ackable > _handedOffVersion)
        {
            _handedOffVersion = ackable;
            _stateWritten.Version = Math.Max(_stateWritten.Version, ackable);
        }

        if (_positionsVersion > ackable && _positionsVersion > _withheldVersion)
        {
            _withheldVersion = _positionsVersion;
            StateTrace?.Invoke("withheld", _positionsVersion.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>The link ended: the next one's versions start afresh.</summary>
    private void ResetStateVersions() => (_positionsVersion, _handedOffVersion, _withheldVersion) = (0, 0, 0);

    /// <summary>
    /// Whether every capture point of <paramref name="file"/> lies within this node's copy of its topic, of the same
    /// creation (a point or a copy without a creation id: by the offset alone). A point of a topic this node does not
    /// hold is not reached (its copy may be created yet). A file without capture points: reached.
    /// </summary>
    private bool Reached(Held file)
    {
        foreach (var (name, point) in file.Points ?? [])
        {
            if (!_byName.TryGetValue(name, out var copy) || copy.Journal.NextOffset < point.Next)
            {
                return false;
            }

            var creation = copy.Incarnation ??= CreationOf(name);
            if (point.Incarnation != 0 && creation != 0 && point.Incarnation != creation)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The creation id in this node's copy's <c>topic.meta</c> (0: none, or unreadable).</summary>
    private ulong CreationOf(string topic)
    {
        try
        {
            return TopicRegistry.IncarnationOf(File.ReadAllText(Path.Combine(_topicsRoot, topic, TopicRegistry.MetaFile)));
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>Replaces this node's copy (fsynced, renamed; the directory synced before the next STATE_ACK).</summary>
    private void Install(Held file)
    {
        StateFiles.WriteAtomically(file.Path, file.Bytes, StateTrace is { } trace ? step => trace(step, file.Relative) : null);
        _stateWritten.Directories.Add(Path.GetDirectoryName(file.Relative) ?? "");
    }

    // AckUpTo: the newest state version a STATE_ACK may cover while this file is held (AckableVersion).
    private sealed record Held(string Relative, string Path, byte[] Bytes, Dictionary<string, ProducerCheckpoint.CapturePoint>? Points, long AckUpTo = 0);
}
