namespace FastBroker.ReplicationTests.Failover;

/// <summary>The failover invariant, checked against what a primary actually holds.</summary>
internal static class ConfirmedMessages
{
    /// <summary>
    /// Every confirmed publication is in <paramref name="content"/> exactly once, at the offset its confirmation named,
    /// and confirmed publications of the producer are stored in the order it sent them (which, for one producer, is the
    /// order of acknowledgement). No payload of the producer is stored twice, confirmed or not (the idempotent producer
    /// must deduplicate a resend across the failover). Returns the number of confirmed publications checked.
    /// </summary>
    public static int AssertExactlyOnce(IReadOnlyList<Publication> publications, TopicContent content, string prefix)
    {
        var stored = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < content.Payloads.Count; i++)
        {
            var payload = content.Payloads[i];
            if (payload.StartsWith(prefix, StringComparison.Ordinal) && !stored.TryAdd(payload, content.Tail + i))
            {
                Assert.Fail($"'{payload}' is stored twice: at offsets {stored[payload]} and {content.Tail + i}");
            }
        }

        var confirmed = 0;
        var lastOffset = -1L;
        foreach (var p in publications)
        {
            if (!p.IsConfirmed)
            {
                continue;
            }

            confirmed++;
            Assert.True(stored.TryGetValue(p.Payload, out var at), $"confirmed '{p.Payload}' (offset {p.Offset}) is missing: lost in the failover (topic holds {content.Tail}..{content.Head})");
            Assert.True(at == p.Offset, $"confirmed '{p.Payload}' was confirmed at offset {p.Offset} but is stored at {at}");
            Assert.True(p.Offset > lastOffset, $"confirmed '{p.Payload}' at offset {p.Offset} is not after the previous confirmed publication (offset {lastOffset}): acknowledgement order broken");
            lastOffset = p.Offset;
        }

        return confirmed;
    }
}
