using FastBroker.Engine;

namespace FastBroker;

// Commits of a durable subscription's positions.
public sealed partial class Subscription
{
    private readonly object _commitLock = new(); // a commit's store and its replication update, in one order

    /// <summary>
    /// Tests: called with (topic, next offset) between storing a commit in the position file and queueing it for the
    /// standby, under the subscription's commit lock.
    /// </summary>
    internal Action<string, long>? CommitStored { get; set; }

    /// <summary>Saves the current positions of a durable subscription (no-op for others).</summary>
    /// <exception cref="ObjectDisposedException">The subscription was disposed: nothing is stored (positions stay as last committed).</exception>
    public void Commit()
    {
        ThrowIfDisposed();
        CommitPositions();
    }

    /// <summary>
    /// <see cref="Commit()"/> without the disposal check, for the auto-commits of a fetch, which check it themselves
    /// (a dispose racing one finds the position file closed: <see cref="ObjectDisposedException"/> out of that fetch).
    /// </summary>
    private void CommitPositions()
    {
        if (_positions is null)
        {
            return;
        }

        var sync = false;
        foreach (var c in Volatile.Read(ref _cursors))
        {
            StoreAndQueue(c.Topic.Name, c.NextOffset);
            sync |= c.Topic.Options.Durability == Durability.Fsynced;
        }

        if (sync)
        {
            _positions.RequestSync(); // msynced in the background, batched with other commits
        }
    }

    /// <summary>
    /// Saves <paramref name="nextOffset"/> as the durable position in <paramref name="topic"/>: the next offset to deliver
    /// after a restart (last processed + 1). Lets a consumer commit what it has processed rather than everything
    /// it has been handed (the wire protocol's COMMIT).
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.InvalidArgument"/>: not durable, the topic is not covered by the subscription, or the offset is outside the topic.</exception>
    public void Commit(string topic, long nextOffset) => CommitCore(topic, nextOffset);

    /// <summary>
    /// <see cref="Commit(string, long)"/>, then, for an <c>Fsynced</c> topic, waits until the position file is msynced
    /// (by the broker's state flusher, one msync for the commits made meanwhile, as a group commit), so that it survives
    /// a power loss as the topic's messages do; and on the primary of a failover pair whose topic acknowledges in a
    /// standby mode (<see cref="TopicOptions.Acks"/>), until the standby has applied the position too, so that it
    /// survives a failover (invariant 5). Completes at once everywhere else.
    /// </summary>
    /// <exception cref="BrokerException"><see cref="BrokerErrorCode.NotPrimary"/>: not stored, the node is a deposed primary of a
    /// pair; <see cref="BrokerErrorCode.NotReplicated"/>: stored here, but the standby did not
    /// acknowledge it within the ack timeout; <see cref="BrokerErrorCode.StorageError"/>: stored here, but the msync
    /// failed; <see cref="BrokerErrorCode.Closed"/>, naming the position file: stored here, but the subscription closed
    /// (its connection's close, the broker's) before the msync was requested, so it is not confirmed on disk; as for
    /// <see cref="Commit(string, long)"/> otherwise.</exception>
    public ValueTask CommitAsync(string topic, long nextOffset, CancellationToken cancellationToken = default)
    {
        if (_broker.Replication is { MayConfirm: false })
        {
            // A deposed primary (its witness lease ran out, or a newer primary exists) that has not stepped down yet:
            // a commit answered here would be missing on the new primary, which delivers the messages again.
            throw new BrokerException(BrokerErrorCode.NotPrimary, $"commit of '{topic}' not stored: this node is no longer the primary (its witness lease ran out, or a newer primary exists)");
        }

        var (cursorTopic, version, generation) = CommitCore(topic, nextOffset);
        var replicated = _broker.Replication?.WaitForState(version, cursorTopic.Options.Acks);
        var synced = generation == 0 ? Task.CompletedTask : _positions!.WaitForSyncAsync(generation);
        if (synced.IsCompletedSuccessfully)
        {
            return replicated is { } wait ? new ValueTask(wait.WaitAsync(cancellationToken)) : default;
        }

        return new ValueTask(BothAsync(synced, replicated, _broker.Replication, topic, cancellationToken));

        static async Task BothAsync(Task synced, Task? replicated, ReplicationGate? gate, string topic, CancellationToken cancellationToken)
        {
            await synced.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (replicated is not null)
            {
                await replicated.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (gate is { MayConfirm: false })
            {
                // The lease ran out during the msync (the standby's application is checked where the gate releases it).
                throw new BrokerException(BrokerErrorCode.NotPrimary, $"commit of '{topic}' stored here but not confirmed: this node is no longer the primary (its witness lease ran out, or a newer primary exists)");
            }
        }
    }

    private (TopicState Topic, long Version, long SyncGeneration) CommitCore(string topic, long nextOffset)
    {
        ThrowIfDisposed();
        if (_positions is null)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, "only a durable subscription (DurableName) can commit");
        }

        TopicCursor? cursor = null;
        foreach (var c in Volatile.Read(ref _cursors))
        {
            if (c.Topic.Name == topic)
            {
                cursor = c;
                break;
            }
        }

        if (cursor is null)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"subscription '{Pattern}' does not read topic '{topic}'");
        }

        if (nextOffset < 0 || nextOffset > cursor.Topic.Head)
        {
            throw new BrokerException(BrokerErrorCode.InvalidArgument, $"offset {nextOffset} is outside topic '{topic}' (0…{cursor.Topic.Head})");
        }

        var version = StoreAndQueue(topic, nextOffset);
        var generation = cursor.Topic.Options.Durability == Durability.Fsynced ? _positions.RequestSync() : 0;
        return (cursor.Topic, version, generation);
    }

    /// <summary>
    /// Stores a commit in the position file and queues it for the standby (returns its state version; 0: no standby), as
    /// one step per subscription: two threads committing the same subscription queue their updates in the order they
    /// stored them, so the last update the standby applies is the position the file holds, never an older commit.
    /// </summary>
    private long StoreAndQueue(string topic, long nextOffset)
    {
        lock (_commitLock)
        {
            _positions!.Commit(topic, nextOffset);
            CommitStored?.Invoke(topic, nextOffset);
            return _broker.Replication?.PositionCommitted(Options.DurableName!, topic, nextOffset) ?? 0;
        }
    }
}
