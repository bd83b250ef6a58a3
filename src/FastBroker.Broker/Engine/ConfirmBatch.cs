namespace FastBroker.Engine;

/// <summary>
/// The connections (<see cref="IPublishConfirmBatchSink"/>) that got confirmations during one pass of a broker thread
/// (a journaler batch, or one ACK frame on the replicator's ack reader), each told once at the end so it can send
/// them itself. One owner thread; reused, so a pass allocates nothing.
/// </summary>
internal sealed class ConfirmBatch
{
    private readonly List<IPublishConfirmBatchSink> _sinks = new(16);
    private readonly List<TopicState> _visible = new(16);

    /// <summary>Hands one confirmation to <paramref name="sink"/>, in the batch form when it has one.</summary>
    public void Confirm(IPublishConfirmSink? sink, ulong token, long offset, bool duplicate)
    {
        if (sink is IPublishConfirmBatchSink batchSink)
        {
            batchSink.OnPublishConfirmedInBatch(token, offset, duplicate);
            Note(batchSink);
        }
        else
        {
            sink?.OnPublishConfirmed(token, offset, duplicate);
        }
    }

    /// <summary>The pass is over: every sink noted sends (or hands over) what it got. Call outside any lock.</summary>
    public void End()
    {
        foreach (var sink in _sinks)
        {
            sink.OnConfirmBatchEnd();
        }

        _sinks.Clear();

        // Then the readers of the topics whose consumer-visible end the pass raised (after the confirmations, as the
        // dispatcher does: a batch's confirmations leave before its readers are woken).
        foreach (var topic in _visible)
        {
            topic.WakeReaders();
        }

        _visible.Clear();
    }

    /// <summary>The pass raised <paramref name="topic"/>'s <see cref="TopicState.VisibleEnd"/>: its readers are woken at <see cref="End"/>.</summary>
    public void NoteVisible(TopicState topic)
    {
        if (!_visible.Contains(topic))
        {
            _visible.Add(topic);
        }
    }

    private void Note(IPublishConfirmBatchSink sink)
    {
        // A batch usually comes from one or a few connections: the last one added is the common hit.
        if (_sinks.Count > 0 && ReferenceEquals(_sinks[^1], sink))
        {
            return;
        }

        foreach (var s in _sinks)
        {
            if (ReferenceEquals(s, sink))
            {
                return;
            }
        }

        _sinks.Add(sink);
    }
}
