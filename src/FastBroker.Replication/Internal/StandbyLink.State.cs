using System.Collections.Concurrent;
using System.Net.Sockets;
using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

/// <summary>The link's broker state: committed positions, new producer epochs and the state files (<see cref="StateFiles"/>).</summary>
internal sealed partial class StandbyLink
{
    private readonly HashSet<string> _sentWhole = new(StringComparer.Ordinal); // subscriptions whose .pos this pass sent
    private readonly ConcurrentQueue<string> _stateWanted = new(); // STATE_WANTED paths, for the sender thread
    private readonly StateScan _scan; // sender thread: which files a heartbeat's check reads again
    private readonly List<string> _changedGroupFiles = [];
    private readonly List<string> _due = []; // sender thread: the files a check reads
    private readonly HashSet<string> _dueSet = new(StringComparer.Ordinal);
    private readonly List<string> _gone = []; // sender thread: the files a check found gone
    private List<string>? _reportedCopies; // the copies the standby's STATE_DIGESTS reported, until the attach's listing
    private volatile bool _digestsRead; // the sender thread has read the standby's STATE_DIGESTS: PollAcks may read frames
    private int _digestsReported;
    private long _stateBytesRead;
    private int _checkReads;
    private long _heartbeatsSent;

    /// <summary>HEARTBEAT frames sent on this link (each after its check of the state files).</summary>
    internal long HeartbeatsSent => Volatile.Read(ref _heartbeatsSent);

    /// <summary>Bytes of state files the sender thread read on this link to compare them with the standby's copies (<see cref="SendStateFile"/>).</summary>
    internal long StateBytesRead => Volatile.Read(ref _stateBytesRead);

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

        // The frame below (sent in this pass, after any file sent whole here) has the standby store these commits. The
        // next heartbeat's check reads each such file again (the commit is all it expects to find changed).
        foreach (var u in _positionUpdates)
        {
            _stateCopies.Shipped(u);
            _scan.Mark(PositionPath(u.Subscription));
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
    /// Sender thread, after the WELCOME (before the ack reader starts; the journaler's <see cref="PollAcks"/> waits for
    /// it): reads the standby's STATE_DIGESTS and records each copy it reported (<see cref="StateCopies.Reported"/>), so
    /// that the attach sends whole only the files whose copy differs or is missing. Frames the standby sent before it
    /// (an ACK of its durable thread) are handled as the ack reader would. The standby applies the WELCOME's cuts and
    /// reads every copy first, so the wait is bounded as the ack reader's first one is: the standby silence timeout,
    /// and at least 30 s.
    /// </summary>
    private void ReadStateDigests()
    {
        lock (_ackLock)
        {
            _socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, Math.Max(_owner.Options.StandbySilenceTimeout.TotalMilliseconds, 30_000));
            try
            {
                while (true)
                {
                    if (!_ackInput.Read(out var kind, out var body))
                    {
                        throw new IOException("the standby closed the connection before it said which state files it holds");
                    }

                    if (kind == FrameKind.StateDigests)
                    {
                        var digests = StateDigests.Parse(body);
                        _reportedCopies = new List<string>(digests.Count);
                        foreach (var d in digests)
                        {
                            _stateCopies.Reported(d.Relative, d.Length, d.Hash);
                            _reportedCopies.Add(d.Relative);
                        }

                        _digestsReported = digests.Count;
                        if (!HandleAckFrames())
                        {
                            throw new IOException(RefusedReason);
                        }

                        break;
                    }

                    if (!HandleAckFrame(kind, body))
                    {
                        throw new IOException(RefusedReason);
                    }
                }
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw new IOException($"no STATE_DIGESTS from the standby within {_socket.ReceiveTimeout} ms of the WELCOME", ex);
            }
            finally
            {
                _socket.ReceiveTimeout = 0;
            }

            _digestsRead = true;
        }
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
    /// Sender thread, after the pass's POSITIONS frame: each state file the standby asked for, whole (a damaged copy,
    /// or one its STATE_DIGESTS left out), or named in a STATE_GONE when it is gone (<see cref="SendRemovals"/>). Read
    /// after the drain, it holds the updates shipped before it or later commits, whose updates follow it in the next frame.
    /// </summary>
    private void SendWantedStateFiles(FrameBuffer f)
    {
        if (_stateWanted.IsEmpty)
        {
            return;
        }

        while (_stateWanted.TryDequeue(out var relative))
        {
            _stateCopies.Forget(relative);
            SendStateFile(f, relative);
        }

        SendRemovals(f);
    }

    /// <summary>
    /// Reads every state file and sends those whose contents the standby lacks (<see cref="StateCopies"/>); adds to
    /// <paramref name="positionsSent"/> the subscriptions whose position file it sent. Then tells the standby to remove
    /// its copy of each file gone (<see cref="SendRemovals"/>): those this link read and no longer finds, and at the
    /// attach each copy the standby reported (<see cref="ReadStateDigests"/>) whose file this listing did not find. The
    /// attach and a hand-over's request (both before their POSITIONS frame, whose STATE_ACK then covers the removals):
    /// the rolling pass's sweep (<see cref="StateScan.Plan"/>) counts as done.
    /// </summary>
    private void SendStateFiles(FrameBuffer f, HashSet<string>? positionsSent = null)
    {
        foreach (var key in _scan.ListAll())
        {
            if (SendStateFile(f, key) && positionsSent is not null && StateFiles.SubscriptionOf(key) is { } subscription)
            {
                positionsSent.Add(subscription);
            }
        }

        if (_reportedCopies is { } reported)
        {
            foreach (var key in reported)
            {
                if (!_scan.Knows(key))
                {
                    _scan.Gone(key); // not listed (or not readable): SendRemovals checks it is gone
                }
            }

            _reportedCopies = null;
        }

        _scan.AllRead();
        SendRemovals(f);
    }

    /// <summary>
    /// Tells the standby to remove its copy (<see cref="FrameKind.StateGone"/>) of each state file found gone since the
    /// last call (<see cref="StateScan.TakeGone"/>), if the file is gone indeed (<see cref="StateFiles.IsGone"/>): one
    /// that could not be read for another reason, or was created again since, is not named (its next read sends it as
    /// it is). A file named is unknown to <see cref="StateCopies"/> from then on: one created again goes whole.
    /// </summary>
    private void SendRemovals(FrameBuffer f)
    {
        _scan.TakeGone(_gone);
        if (_gone.Count == 0)
        {
            return;
        }

        var root = _owner.Broker.Options.DataDirectory;
        foreach (var key in _gone)
        {
            if (!StateFiles.IsGone(Path.Combine(root, key)))
            {
                continue;
            }

            _stateCopies.Forget(key);
            f.Begin(FrameKind.StateGone).Str(key).End();
            Send(f);
            Interlocked.Increment(ref _stateFilesRemoved);
            _owner.StateFileGone?.Invoke(key);
        }

        _gone.Clear();
    }

    /// <summary>
    /// A heartbeat's check: reads the state files that may have changed since this link last read them, by the marks
    /// and a fixed few <c>stat</c>s (<see cref="StateScan.AddChanged"/>: commits drained, the producers' files' length
    /// and time, new position files), and the rolling pass's slice (<see cref="StateScan.Plan"/>: every file once per
    /// <see cref="PrimaryReplicator.StateRescanInterval"/>, a bounded share at each heartbeat), sending those the
    /// standby lacks, and telling it to remove its copies of those found gone (<see cref="SendRemovals"/>).
    /// </summary>
    private void CheckStateFiles(FrameBuffer f)
    {
        _checkReads = 0;
        _scan.TakeStats(); // counted from here
        _scan.TakeListings();
        _due.Clear();
        _scan.AddChanged(_due);
        var sweep = _scan.Plan(_due, _owner.Options.HeartbeatInterval, _owner.StateRescanInterval);
        _dueSet.Clear();
        for (var i = 0; i < _due.Count; i++)
        {
            if (_dueSet.Add(_due[i]))
            {
                SendStateFile(f, _due[i]);
            }
        }

        _due.Clear();
        SendRemovals(f);
        _owner.StateChecked?.Invoke(new StateCheckCost(_scan.TakeStats(), _checkReads, sweep, _scan.TakeListings()));
    }

    /// <summary>
    /// A group-state send: reads only the group state files changed since the last one
    /// (<see cref="ReplicationGate.TakeGroupStateChanged"/>), and the position files this link never read (a new
    /// subscription's, found by listing <c>subscriptions/</c> when its last write time moved:
    /// <see cref="StateScan.AddNewSubscriptions"/>).
    /// </summary>
    private void SendChangedGroupStates(FrameBuffer f)
    {
        var root = _owner.Broker.Options.DataDirectory;
        foreach (var path in _changedGroupFiles)
        {
            SendStateFile(f, Path.GetRelativePath(root, path).Replace('\\', '/'));
        }

        _changedGroupFiles.Clear();
        _due.Clear();
        _scan.AddNewSubscriptions(_due);
        foreach (var key in _due)
        {
            SendStateFile(f, key);
        }

        _due.Clear();
        SendRemovals(f);
    }

    private static string PositionPath(string subscription) => "subscriptions/" + subscription + ".pos";

    /// <summary>
    /// Sends one state file whole, unless the standby already has these bytes, or will once it applied what was sent
    /// (<see cref="StateCopies.Holds"/>), or the file is gone; true when sent.
    /// </summary>
    /// <param name="f">The frame buffer.</param>
    /// <param name="relative">The file's relative path.</param>
    private bool SendStateFile(FrameBuffer f, string relative)
    {
        var key = relative.Replace('\\', '/');
        var full = Path.Combine(_owner.Broker.Options.DataDirectory, relative);
        (long Length, long Ticks)? before = StateScan.IsStamped(key) ? _scan.StampOf(full) : null; // the producers' files only
        var bytes = StateFiles.ReadShared(full);
        if (bytes is null)
        {
            _scan.Gone(key);
            return false;
        }

        _scan.Read(key, before);
        _checkReads++;
        Interlocked.Add(ref _stateBytesRead, bytes.Length);
        _owner.StateFileRead?.Invoke(key);

        if (_stateCopies.Holds(relative, bytes))
        {
            return false;
        }

        _stateCopies.SentWhole(relative, bytes);
        var path = relative.Replace('\\', '/');
        f.Begin(FrameKind.State).Str(path).U32((uint)bytes.Length).Bytes(bytes).End();

        // Counted before the send, not after: once the frame is on the socket the standby may apply it, and whoever
        // watches both (a test's hook, the status's stateFilesSent) must not see the standby's copy before the count. A
        // send that fails ends the link, whose count goes with it.
        Interlocked.Increment(ref _stateFilesSent);
        _owner.StateFileSent?.Invoke(path);
        Send(f);
        return true;
    }
}
