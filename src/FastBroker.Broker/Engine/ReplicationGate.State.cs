using System.Collections.Concurrent;
using System.Diagnostics;

namespace FastBroker.Engine;

// Broker state outside the journals: committed positions, new producer epochs and state files, versioned for the standby.
internal sealed partial class ReplicationGate
{
    private readonly ConcurrentQueue<StateFileMark> _changedGroupFiles = new();

    /// <summary>The standby has applied every position update up to this version.</summary>
    public long StateApplied => Volatile.Read(ref _stateApplied);

    /// <summary>
    /// A durable subscription committed <paramref name="nextOffset"/> in <paramref name="topic"/> (already stored
    /// locally): queue it for the standby and wake the replicator. Returns the update's version, for
    /// <see cref="WaitForState"/>.
    /// </summary>
    public long PositionCommitted(string subscription, string topic, long nextOffset)
    {
        long version;
        lock (_stateLock)
        {
            version = ++_stateVersion;
            _positionUpdates.Add(new PositionUpdate(version, subscription, topic, nextOffset));
        }

        Wake?.Invoke();
        return version;
    }

    /// <summary>
    /// <see cref="Broker.InitProducer"/> gave an id a new epoch and wrote it to <c>producers.epochs</c> (already on disk
    /// here, <see cref="ProducerEpochFile"/>): the replicator sends that file to the standby, then a state version covering it, within the
    /// same wake-up. Returns that version, for <see cref="WaitForState"/>.
    /// </summary>
    public long ProducerEpochsWritten() => NextStateVersion(ref _producerStateVersion);

    /// <summary>
    /// The node is handing over to its standby (a graceful stop): the replicator sends every state file whose contents
    /// the standby lacks (the group state included, which it otherwise sends at most every 20 ms), then a state
    /// version covering them, within the same wake-up. Returns that version: once <see cref="StateApplied"/> reaches it,
    /// the standby has every state file as it was at this call, and every position committed before it.
    /// </summary>
    public long RequestStateFiles() => NextStateVersion(ref _stateFilesVersion);

    /// <summary>A new state version, stored in <paramref name="marker"/> (under the state lock); wakes the replicator.</summary>
    private long NextStateVersion(ref long marker)
    {
        long version;
        lock (_stateLock)
        {
            version = ++_stateVersion;
            marker = version;
        }

        Wake?.Invoke();
        return version;
    }

    /// <summary>
    /// Null when a commit (or a new producer epoch) of <paramref name="version"/> can be answered now (the mode is
    /// local, the standby already has it, or none is attached and the gate degrades to local); otherwise a task that
    /// completes when the standby has applied it, or fails with <see cref="BrokerErrorCode.NotReplicated"/> after
    /// <see cref="AckTimeout"/>, or with <see cref="FailAll"/>'s error (at once when called after it).
    /// <paramref name="what"/> names the change in that error ("position committed" if null).
    /// </summary>
    public Task? WaitForState(long version, AckMode mode, string? what = null)
    {
        if (mode == AckMode.Local)
        {
            return null;
        }

        lock (_stateLock)
        {
            if (version <= _stateApplied)
            {
                return null;
            }

            if (_failure is { } failure)
            {
                // FailAll failed the waiters it found (under this lock); nothing fails one that begins later but its
                // timeout, which a closed broker no longer checks.
                return Task.FromException(new BrokerException(failure.Code, failure.Reason));
            }

            if (!_standbyAttached && DegradeToLocal)
            {
                if (TryCountDegraded())
                {
                    return null;
                }

                DegradeWanted?.Invoke();
            }

            var waiter = new StateWaiter(version, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), Stopwatch.GetTimestamp(), what ?? "position committed");
            _stateWaiters.Enqueue(waiter);
            return waiter.Completion.Task;
        }
    }

    /// <summary>Replicator: moves the queued position updates (in version order) into <paramref name="into"/>.</summary>
    public void DrainPositionUpdates(List<PositionUpdate> into) => DrainStateUpdates(into, out _, out _);

    /// <summary>
    /// Replicator: moves the queued position updates (in version order) into <paramref name="into"/> and returns the
    /// newest version drained, 0 if none. <paramref name="producerEpochs"/> is true when a new producer epoch is among
    /// them: the checkpoint file must be sent (read after this call, so it holds the epoch) before that version.
    /// <paramref name="allStateFiles"/> is true when a hand-over asked for every state file the standby lacks
    /// (<see cref="RequestStateFiles"/>): they must be sent (read after this call) before that version.
    /// </summary>
    public long DrainStateUpdates(List<PositionUpdate> into, out bool producerEpochs, out bool allStateFiles)
    {
        lock (_stateLock)
        {
            into.AddRange(_positionUpdates);
            _positionUpdates.Clear();
            var version = Math.Max(Math.Max(_producerStateVersion, _stateFilesVersion), into.Count > 0 ? into[^1].Version : 0);
            producerEpochs = _producerStateVersion != 0;
            allStateFiles = _stateFilesVersion != 0;
            _producerStateVersion = 0;
            _stateFilesVersion = 0;
            return version;
        }
    }

    /// <summary>
    /// Replicator, a standby attached: drops the queued updates, which the whole files it is about to send (read
    /// after this call) already hold, and returns the version those files cover.
    /// </summary>
    public long BeginStateSnapshot()
    {
        lock (_stateLock)
        {
            _positionUpdates.Clear();
            _producerStateVersion = 0;
            _stateFilesVersion = 0;
            return _stateVersion;
        }
    }

    /// <summary>Replicator's ack reader: the standby applied every position update up to <paramref name="version"/>.</summary>
    public void OnStateApplied(long version)
    {
        lock (_stateLock)
        {
            if (version > _stateApplied)
            {
                Volatile.Write(ref _stateApplied, version);
            }

            if (_stateWaiters.TryPeek(out var first) && first.Version <= _stateApplied && !MayConfirm)
            {
                // Deposed while they waited: a commit or a new producer epoch answered now would be missing on the new
                // primary. Left for the step-down's FailAll (NotPrimary), as a withheld publish is.
                NoteDeposed();
                return;
            }

            while (_stateWaiters.TryPeek(out var w) && w.Version <= _stateApplied)
            {
                _stateWaiters.Dequeue();
                w.Completion.TrySetResult();
            }
        }
    }

    /// <summary>
    /// A work-queue group's state file (<paramref name="file"/>) changed: its acks, or its floor at open (the file is
    /// shipped whole, at most every 20 ms). The file is queued for the replicator once until it takes it
    /// (<see cref="TakeGroupStateChanged"/>), so a group-state send reads only the files that changed. Wakes the
    /// replicator only when no change is flagged yet: one that is waits for the end of the replicator's 20 ms spacing,
    /// and the replicator, seeing <see cref="GroupStatePending"/>, sleeps no longer than that.
    /// </summary>
    public void GroupStateChanged(StateFileMark file)
    {
        // Queued before the flag is raised: the replicator that takes the flag finds the file.
        if (Interlocked.Exchange(ref file.Queued, 1) == 0)
        {
            _changedGroupFiles.Enqueue(file);
        }

        if (Interlocked.Exchange(ref _groupStateDirty, 1) == 0)
        {
            Wake?.Invoke();
        }
    }

    /// <summary>
    /// Replicator: true once per burst of <see cref="GroupStateChanged"/> calls, adding to <paramref name="paths"/>
    /// the full path of each group state file changed since the last call (each once). A file is unqueued before the
    /// caller reads it: a change made after that queues it again.
    /// </summary>
    public bool TakeGroupStateChanged(List<string> paths)
    {
        if (Interlocked.Exchange(ref _groupStateDirty, 0) == 0)
        {
            return false;
        }

        while (_changedGroupFiles.TryDequeue(out var file))
        {
            Volatile.Write(ref file.Queued, 0);
            paths.Add(file.Path);
        }

        return true;
    }

    /// <summary>
    /// Replicator, before it sleeps: a group-state change is flagged and not taken yet. Read after this returns false,
    /// a later change wakes it (<see cref="GroupStateChanged"/> sees the flag clear).
    /// </summary>
    public bool GroupStatePending => Volatile.Read(ref _groupStateDirty) != 0;
}

/// <summary>A state file whose changes are signalled to the replicator one by one (<see cref="ReplicationGate.GroupStateChanged"/>).</summary>
internal sealed class StateFileMark(string path)
{
    /// <summary>The file's full path.</summary>
    public string Path { get; } = path;

    /// <summary>1 while queued for the replicator.</summary>
    internal int Queued;
}

/// <summary>A committed position on its way to the standby.</summary>
internal readonly record struct PositionUpdate(long Version, string Subscription, string Topic, long NextOffset);

/// <summary>A COMMIT (or an INIT_PRODUCER's new epoch, <paramref name="What"/> says which) waiting for the standby to apply its version.</summary>
internal readonly record struct StateWaiter(long Version, TaskCompletionSource Completion, long Since, string What);
