using System.Collections.Concurrent;
using FastBroker.Engine;
using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// A producers' file the open cannot read for a reason that is not an <see cref="IOException"/> (here a directory in its
/// place, EISDIR; EACCES for a broker not run as root): <see cref="UnauthorizedAccessException"/>. Before, it escaped raw
/// from the producers' recovery and failed the open, whichever file it was. Now <c>producers.state</c> unreadable is
/// reported and the open goes on (its producers are known from the records, its epochs from <c>producers.epochs</c>), as
/// for one it cannot read otherwise; <c>producers.epochs</c> unreadable refuses the open, typed: it alone holds an epoch
/// given to an instance that has not written yet (the periodic captures of <c>producers.state</c> are not synced), so an
/// open without it would let the instance that one replaced resume and publish.
/// </summary>
public sealed class ProducerFileUnreadableTests
{
    private const ulong Id = 0x0E90_C4D0_0000_0041;

    [Fact]
    public async Task A_producers_state_the_open_cannot_read_is_reported_and_the_records_and_the_epochs_file_still_dedupe_and_fence()
    {
        var log = new ConcurrentQueue<string>();
        BrokerOptions Logged(BrokerOptions o) => o with { Log = log.Enqueue };
        await using var f = await BrokerFixture.StartAsync(Logged);
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 3);
        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(3UL, next);
        var state = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);

        await f.RestartAsync(Logged, () =>
        {
            File.Delete(state);
            Directory.CreateDirectory(state);
        });

        Assert.Contains(log, l => l.StartsWith($"{ProducerCheckpoint.FileName}: cannot read it", StringComparison.Ordinal));
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        Assert.Equal((3UL, current), f.Broker.InitProducer(Id, current)); // the rescan of the records knows sequence 2
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 2, "t", "old2-again", 1, epoch: old); // a retry of the old instance's
        Assert.Equal(BrokerErrorCode.ProducerFenced, (await sink.WaitForAsync(1))[0].Error);
    }

    [Fact]
    public async Task A_producers_epochs_the_open_cannot_read_refuses_the_open_and_once_repaired_the_replaced_instance_is_fenced()
    {
        await using var f = await BrokerFixture.StartAsync();
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 3);
        await f.RestartAsync(); // the close's producers.state holds the old instance's epoch as the newest
        var state = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        var older = File.ReadAllBytes(state);
        var (_, current) = f.Broker.InitProducer(Id); // a new instance that has not written: only producers.epochs holds it
        Assert.True(current > old, $"epoch {current} after {old}");
        var epochs = Path.Combine(f.DataDirectory, ProducerEpochFile.FileName);
        byte[]? saved = null;

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () =>
        {
            File.WriteAllBytes(state, older); // a capture from before the new epoch (what a power loss may leave)
            saved = File.ReadAllBytes(epochs);
            File.Delete(epochs);
            Directory.CreateDirectory(epochs);
        }));

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains($"'{epochs}' cannot be read", e.Message, StringComparison.Ordinal);
        Assert.Contains("fenced", e.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(epochs), "the refused open left producers.epochs as it was");

        await f.RestartAsync(whileClosed: () =>
        {
            Directory.Delete(epochs);
            File.WriteAllBytes(epochs, saved!); // repaired: the open reads the epoch only it held
        });
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        Assert.Equal((3UL, current), f.Broker.InitProducer(Id, current));
    }
}
