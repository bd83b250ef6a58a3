using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>The idempotent-producer window as the restart rescan fills it: topic after topic, not in sequence order.</summary>
public class ProducerRegistryTests
{
    private const int Window = 1 << 16;
    private static readonly TopicState s_a = new("a", TopicOptions.Default with { Persistent = false }, "a", null, new TransientLog(16));
    private static readonly TopicState s_b = new("b", TopicOptions.Default with { Persistent = false }, "b", null, new TransientLog(16));

    [Fact]
    public void A_rescan_that_reads_the_newer_topic_first_still_finds_the_newest_sequences()
    {
        // Producer 7 wrote sequences 0…69,999 to a, then 70,000…70,099 to b; the rescan happens to read b first.
        var registry = new ProducerRegistry(Window);
        for (ulong s = 70_000; s < 70_100; s++)
        {
            registry.Record(7, s, s_b, (long)(s - 70_000), 0);
        }

        for (ulong s = 0; s < 70_000; s++)
        {
            registry.Record(7, s, s_a, (long)s, 0);
        }

        // A retry of 70,050 (4,514 in the table's terms, where sequence 4,514 of topic a also falls) is a duplicate.
        Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(7, 70_050, out var topic, out var offset, out _));
        Assert.Equal((s_b, 50L), (topic, offset));
        Assert.Equal(ProducerRegistry.Verdict.Duplicate, registry.Check(7, 69_999, out topic, out offset, out _));
        Assert.Equal((s_a, 69_999L), (topic, offset));
        Assert.Equal(ProducerRegistry.Verdict.New, registry.Check(7, 70_100, out _, out _, out _));
    }

    [Fact]
    public void A_restarting_producer_is_told_to_continue_after_its_highest_stored_sequence_whatever_the_rescan_order()
    {
        var registry = new ProducerRegistry(Window);
        Assert.Equal(0UL, registry.NextSequence(7)); // unknown: start at 0
        registry.Record(7, 0, s_a, 0, 0);
        Assert.Equal(1UL, registry.NextSequence(7));
        registry.Record(7, 500, s_b, 0, 0);
        registry.Record(7, 499, s_a, 1, 0); // read later by the rescan, lower
        Assert.Equal(501UL, registry.NextSequence(7));
        Assert.Equal(0UL, registry.NextSequence(8));

        // Its next sequence is new, not a retry.
        Assert.Equal(ProducerRegistry.Verdict.New, registry.Check(7, registry.NextSequence(7), out _, out _, out _));
    }

    [Fact]
    public void A_sequence_older_than_everything_the_rescan_found_is_refused_not_written_again()
    {
        // The rescan found 10,000…19,999: whether 9,000 was stored (further back in the journal) cannot be told.
        var registry = new ProducerRegistry(Window);
        for (ulong s = 10_000; s < 20_000; s++)
        {
            registry.Record(9, s, s_a, (long)s, 0);
        }

        Assert.Equal(ProducerRegistry.Verdict.TooOld, registry.Check(9, 9_000, out _, out _, out _));

        // Absent but inside what is known: a message that failed and is retried.
        registry.Record(9, 20_001, s_a, 20_001, 0);
        Assert.Equal(ProducerRegistry.Verdict.New, registry.Check(9, 20_000, out _, out _, out _));
    }
}
