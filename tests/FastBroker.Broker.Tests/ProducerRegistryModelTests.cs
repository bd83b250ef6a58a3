using FastBroker.Engine;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The idempotent-producer window driven as the journaler drives it (<see cref="ProducerRegistry.Check"/>, then
/// <see cref="ProducerRegistry.Record"/> for what is written; <see cref="ProducerRegistry.Sweep"/> at each batch;
/// <see cref="ProducerRegistry.Init(ulong, ulong, ulong)"/> between messages; restarts that rebuild it from the journal's newest records
/// topic after topic and from a <see cref="ProducerRegistry.Capture"/> as <c>Broker.RecoverProducers</c> does), against a
/// model of what is stored: per producer, every record written (epoch, sequence, topic, offset, timestamp).
/// Seeded (<see cref="ProducerRegistryModel"/>: 200 seeds of 1,000 batches), so a failure names the seed to replay.
/// </summary>
/// <remarks>
/// <para>After every <c>Check</c> of sequence s with epoch e (0: no epoch, one epoch shared by every publish without one):</para>
/// <list type="number">
/// <item>Never a duplicate write: while the model holds a record of (producer, e, s) that is remembered, the answer is
/// not New. Remembered means not forgotten in one of the documented ways: the sweep forgot the producer (idle for
/// the expiry), a restart found the record older than the expiry, or a restart did not find it in its topic's rescan
/// and has no checkpoint entry for its producer to vouch for it (<c>producers.state</c> missing or damaged). A checkpoint
/// entry is aged by the producer's newest write, as the running broker ages it (aged by its highest sequence's record, a
/// restart once stored a retry twice that the running broker refused: seed 1680).</item>
/// <item>Never a false duplicate: Duplicate names the topic and offset of a record of (producer, e, s): never another
/// epoch's (instance's), never one not written.</item>
/// <item>Fencing: Fenced exactly when e ≠ 0 is below the newest epoch Init gave or a record carried. A restart knows
/// only the epochs of the records it reads (newest epoch of the rescan and the checkpoint), so an Init nobody wrote
/// with is forgotten, and the old instance may resume; the sweep forgetting a producer forgets its epochs too
/// ("its id counts as new").</item>
/// <item>Liveness, where the docs promise it: a retry of a sequence written with the epoch of the producer's window,
/// within the window of its highest, not below the oldest sequence the last restart knew, and not below what a sweep may
/// have shrunk it to, is Duplicate. Conversely a sequence the producer never stored that is above its highest, or absent
/// but inside the window and above its oldest known, is New (a first message, or a failed message retried).</item>
/// </list>
/// <para>Also: <c>highest</c> and <c>NextSequence</c> agree with the model; the sweep forgets only producers idle for the
/// expiry; Init gives an epoch above every one it knows (never one an earlier instance holds) and refuses to resume one
/// below; a checkpoint entry names a record the journal holds.</para>
/// </remarks>
public sealed class ProducerRegistryModelTests
{
    [Fact]
    public void Across_seeds_nothing_is_written_twice_nothing_is_confirmed_that_is_not_held_and_old_epochs_are_fenced()
    {
        // Capture skips producers whose newest record is in a transient topic: the topics need a journal, never written.
        using var directory = new TempDirectory("fastbroker-model");
        using var journal = JournalLog.Open(directory.Combine("j"), JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None });
        TopicState[] topics = [.. Enumerable.Range(0, 3).Select(i => new TopicState($"t{i}", TopicOptions.Default, $"t{i}", journal, null))];
        for (var seed = 0; seed < ProducerRegistryModel.Seeds; seed++)
        {
            new ProducerRegistryModel(seed, topics).Run();
        }
    }
}
