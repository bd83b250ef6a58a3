namespace FastBroker.Engine;

// Reading producers.state at open: entries whose record the topic's retention deleted.
internal sealed partial class ProducerCheckpoint
{
    /// <summary>
    /// Adds to <paramref name="result"/> each entry of <paramref name="belowRetention"/> (its record lies below its topic's
    /// first retained offset) that the file's capture point of that topic places in the same creation of it (both ids
    /// known and equal, the offset below the point): retention deleted the record, and the running broker that wrote
    /// the file still held the producer's window (retention never touches it), so the open trusts the entry as that
    /// broker did. Its time is the entry's newest write; its epoch, which only the deleted record carried, the id's
    /// newest in the file (0 without one). An entry of another creation, or of a file without capture points, vouches
    /// for nothing. Returns how many did not vouch.
    /// </summary>
    private static int TrustBelowRetention(
        List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long LastWrite, ProducerRegistry.Place Previous)>? belowRetention,
        Dictionary<string, CapturePoint>? capturedAt,
        List<(ulong Producer, ulong Epoch, long Seen)> epochs,
        List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> result)
    {
        var untrusted = 0;
        foreach (var (id, highest, topic, offset, lastWrite, previous) in belowRetention ?? [])
        {
            if (capturedAt is not null && capturedAt.TryGetValue(topic.Name, out var point) && point.Incarnation == topic.Incarnation && offset < point.Next)
            {
                var epoch = 0UL;
                foreach (var (producer, given, _) in epochs)
                {
                    epoch = producer == id ? Math.Max(epoch, given) : epoch;
                }

                result.Add((id, highest, topic, offset, lastWrite, epoch, previous));
            }
            else
            {
                untrusted++;
            }
        }

        return untrusted;
    }
}
