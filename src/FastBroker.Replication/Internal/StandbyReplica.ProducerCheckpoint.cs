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
/// </summary>
internal sealed partial class StandbyReplica
{
    private Held? _heldCheckpoint; // receive thread: the oldest producers.state received and not yet installed
    private Held? _newestCheckpoint; // receive thread: the newest received after it, not yet installed

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

        if (_heldCheckpoint is null)
        {
            _heldCheckpoint = file;
        }
        else
        {
            _newestCheckpoint = file;
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

    /// <summary>Drops what is held (the link ended, or the primary removed the file).</summary>
    private void DropHeldCheckpoints() => (_heldCheckpoint, _newestCheckpoint) = (null, null);

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

    private sealed record Held(string Relative, string Path, byte[] Bytes, Dictionary<string, ProducerCheckpoint.CapturePoint>? Points);
}
