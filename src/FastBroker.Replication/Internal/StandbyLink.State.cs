using System.Collections.Concurrent;
using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

/// <summary>The link's broker state: committed positions, new producer epochs and the state files (<see cref="StateFiles"/>).</summary>
internal sealed partial class StandbyLink
{
    private readonly HashSet<string> _sentWhole = new(StringComparer.Ordinal); // subscriptions whose .pos this pass sent
    private readonly ConcurrentQueue<string> _stateWanted = new(); // STATE_WANTED paths, for the sender thread

    /// <summary>
    /// Tests: called on the sender thread with false just before it drains the queued state updates (what is queued
    /// then is drained) and true just after (what is committed then is drained by the next pass).
    /// </summary>
    internal Action<bool>? StateDrained { get; set; }

    /// <summary>
    /// Committed positions and new producer epochs, as one POSITIONS frame whose version the standby acknowledges once
    /// it applied it (zero updates when only an epoch changed). A new epoch sends <c>producers.epochs</c> first (read
    /// after the drain, so it holds the epoch): the standby writes it before it reads the POSITIONS frame, so
    /// its acknowledgement, which answers the INIT_PRODUCER, says it has the epoch. A hand-over's request
    /// (<see cref="ReplicationGate.RequestStateFiles"/>) sends every state file the standby lacks first in the same way
    /// (<see cref="StateCopies"/>, which takes the updates of this frame as applied: a position file changed only by
    /// them does not go whole); the updates of a subscription whose position file goes whole are then left out of the
    /// frame: the file, read after the drain, holds them or a later commit, which the standby would otherwise step back
    /// from until the next frame.
    /// </summary>
    private int ShipPositions(FrameBuffer f)
    {
        _positionUpdates.Clear();
        StateDrained?.Invoke(false);
        var version = _owner.Gate.DrainStateUpdates(_positionUpdates, out var producerEpochs, out var allStateFiles);
        StateDrained?.Invoke(true);
        if (version == 0)
        {
            return 0;
        }

        // The frame below (sent in this pass, after any file sent whole here) has the standby store these commits.
        foreach (var u in _positionUpdates)
        {
            _stateCopies.Shipped(u);
        }

        if (allStateFiles)
        {
            _sentWhole.Clear();
            SendStateFiles(f, _sentWhole);
            if (_sentWhole.Count > 0)
            {
                _positionUpdates.RemoveAll(u => _sentWhole.Contains(u.Subscription));
            }
        }
        else if (producerEpochs)
        {
            SendStateFile(f, ProducerEpochFile.FileName);
        }

        f.Begin(FrameKind.Positions).I64(version).U32((uint)_positionUpdates.Count);
        foreach (var u in _positionUpdates)
        {
            f.Str(u.Subscription).Str(u.Topic).I64(u.NextOffset);
        }

        f.End();
        Send(f);
        return Math.Max(1, _positionUpdates.Count);
    }

    /// <summary>
    /// Ack reader: the standby's copy of a state file was damaged (<see cref="FrameKind.StateWanted"/>); the sender
    /// thread sends it whole in its next pass, whatever it sent before.
    /// </summary>
    private void OnStateWanted(ReadOnlySpan<byte> body)
    {
        var relative = new FrameReader(body).Str();
        if (!StateFiles.IsStatePath(relative))
        {
            throw new InvalidDataException($"state file path '{relative}' asked for by the standby refused");
        }

        _stateWanted.Enqueue(relative);
        _owner.WakeSignal.Set();
    }

    /// <summary>
    /// Sender thread, after the pass's POSITIONS frame: each state file the standby asked for, whole. Read after the
    /// drain, it holds the updates shipped before it or later commits, whose updates follow it in the next frame.
    /// </summary>
    private void SendWantedStateFiles(FrameBuffer f)
    {
        while (_stateWanted.TryDequeue(out var relative))
        {
            _stateCopies.Forget(relative);
            SendStateFile(f, relative);
        }
    }

    /// <summary>Sends every state file whose contents the standby lacks (<see cref="StateCopies"/>); adds to <paramref name="positionsSent"/> the subscriptions whose position file it sent.</summary>
    private void SendStateFiles(FrameBuffer f, HashSet<string>? positionsSent = null)
    {
        foreach (var relative in StateFiles.Enumerate(_owner.Broker.Options.DataDirectory))
        {
            if (SendStateFile(f, relative) && positionsSent is not null && StateFiles.SubscriptionOf(relative) is { } subscription)
            {
                positionsSent.Add(subscription);
            }
        }
    }

    /// <summary>
    /// Sends one state file whole, unless the standby already has these bytes, or will once it applied what was sent
    /// (<see cref="StateCopies.Holds"/>), or the file is gone; true when sent.
    /// </summary>
    private bool SendStateFile(FrameBuffer f, string relative)
    {
        var bytes = StateFiles.ReadShared(Path.Combine(_owner.Broker.Options.DataDirectory, relative));
        if (bytes is null)
        {
            return false;
        }

        if (_stateCopies.Holds(relative, bytes))
        {
            return false;
        }

        _stateCopies.SentWhole(relative, bytes);
        var path = relative.Replace('\\', '/');
        f.Begin(FrameKind.State).Str(path).U32((uint)bytes.Length).Bytes(bytes).End();
        Send(f);
        Interlocked.Increment(ref _stateFilesSent);
        _owner.StateFileSent?.Invoke(path);
        return true;
    }
}
