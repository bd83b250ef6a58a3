namespace FastBroker.Engine;

// The topics as an array replaced at each addition: read with no lock and no allocation.
internal sealed partial class TopicRegistry
{
    private TopicState[] _snapshot = []; // replaced, never changed: under the creation lock (LoadAll: before start)

    /// <summary>
    /// Every topic, as an array replaced (never changed) at each addition: read without a lock or an allocation, where
    /// <see cref="All"/> copies the dictionary's values. The journaler's producer checkpoint captures read it
    /// (<see cref="ProducerCheckpoint"/>'s capture points, every <see cref="ProducerCheckpoint.Interval"/> records).
    /// </summary>
    public TopicState[] Snapshot => Volatile.Read(ref _snapshot);

    /// <summary>Adds <paramref name="topic"/> under <paramref name="name"/> (a name not yet known), then to <see cref="Snapshot"/>.</summary>
    private void Put(string name, TopicState topic)
    {
        _topics[name] = topic;
        Volatile.Write(ref _snapshot, [.. _snapshot, topic]);
    }
}
