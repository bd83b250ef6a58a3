using System.Collections.Concurrent;
using FastBroker.Engine;
using FastBroker.Testing;
using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// The epochs INIT_PRODUCER gives are in <c>producers.epochs</c>, written only durably and only for a new epoch, so they
/// survive what a power loss can do to <c>producers.state</c>, whose periodic captures are renamed without an fsync: the
/// file missing, empty, torn, or an older capture in its place. A power loss cannot be made here; each case leaves the
/// data directory as one can (after a clean stop, which wrote both files) and restarts on it.
/// </summary>
public sealed class ProducerEpochDurabilityTests
{
    private const ulong Id = 0x0E90_C4D0_0000_0031;
    private const ulong Other = 0x0E90_C4D0_0000_0032;

    [Theory]
    [InlineData("missing")]
    [InlineData("empty")]
    [InlineData("torn")]
    [InlineData("older")]
    public async Task A_replaced_instance_stays_fenced_after_a_restart_that_lost_the_checkpoints_epoch(string loss)
    {
        await using var f = await BrokerFixture.StartAsync();
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 3);
        await f.RestartAsync(); // the close's producers.state holds the old instance, and its epoch as the newest
        var checkpoint = Path.Combine(f.DataDirectory, ProducerCheckpoint.FileName);
        var older = File.ReadAllBytes(checkpoint);

        var (next, current) = f.Broker.InitProducer(Id);
        Assert.Equal(3UL, next);
        Assert.True(current > old, $"epoch {current} after {old}");
        await f.RestartAsync(whileClosed: () => Lose(checkpoint, loss, older));

        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        var sink = new RecordingSink();
        PublishIdempotent(f.Broker, sink, Id, 3, "t", "old3", 1, epoch: old); // the replaced instance goes on: fenced
        var fenced = (await sink.WaitForAsync(1))[0];
        Assert.True(fenced.Error == BrokerErrorCode.ProducerFenced, $"the replaced instance's publish after producers.state was {loss}: {fenced.Error} at offset {fenced.Offset}, expected ProducerFenced (epoch {old} was replaced by {current})");
        Assert.Equal((3UL, current), f.Broker.InitProducer(Id, current)); // the new instance resumes
        PublishIdempotent(f.Broker, sink, Id, 3, "t", "new3", 2, epoch: current);
        var stored = (await sink.WaitForAsync(2)).Single(o => o.Token == 2);
        Assert.Equal((3L, false, BrokerErrorCode.None), (stored.Offset, stored.Duplicate, stored.Error));
    }

    /// <summary>
    /// A damaged <c>producers.epochs</c> is reported and ignored: <c>producers.state</c> (here whole) still fences with
    /// the epochs it holds.
    /// </summary>
    [Fact]
    public async Task A_damaged_epochs_file_is_reported_and_the_checkpoints_epochs_still_fence()
    {
        var log = new ConcurrentQueue<string>();
        BrokerOptions Logged(BrokerOptions o) => o with { Log = log.Enqueue };
        await using var f = await BrokerFixture.StartAsync(Logged);
        var old = await StartOldInstanceAsync(f.Broker, Id, stored: 3);
        var (_, current) = f.Broker.InitProducer(Id);
        var epochs = Path.Combine(f.DataDirectory, ProducerCheckpointFile.EpochsName);
        Assert.True(ProducerCheckpointFile.Holds(epochs, current), $"{epochs} holds epoch {current} once InitProducer returned");
        await f.RestartAsync(Logged, () =>
        {
            var bytes = File.ReadAllBytes(epochs);
            bytes[^1] ^= 0xFF; // its CRC32C no longer matches
            File.WriteAllBytes(epochs, bytes);
        });

        Assert.Contains(log, l => l.StartsWith("producers.epochs: damaged", StringComparison.Ordinal));
        Assert.Equal(BrokerErrorCode.ProducerFenced, Assert.Throws<BrokerException>(() => f.Broker.InitProducer(Id, old)).Code);
        Assert.Equal((3UL, current), f.Broker.InitProducer(Id, current));
    }

    /// <summary>
    /// The epochs file holds what the registry knows when it is written: an id whose instance never wrote, last in use
    /// longer than <see cref="BrokerOptions.ProducerEpochRetention"/> ago, is dropped at a restart, as the running broker
    /// prunes it, and the open's own write leaves it out (the file is compacted), so it does not grow with ids that never
    /// return; one within the retention stays, though older than <see cref="BrokerOptions.ProducerExpiry"/>.
    /// </summary>
    [Fact]
    public async Task The_epochs_file_leaves_out_ids_past_the_epoch_retention()
    {
        static BrokerOptions ShortRetention(BrokerOptions o) => o with { ProducerIdleTimeout = TimeSpan.FromMilliseconds(100), ProducerExpiry = TimeSpan.FromMilliseconds(200), ProducerEpochRetention = TimeSpan.FromMilliseconds(500) };
        await using var f = await BrokerFixture.StartAsync(ShortRetention);
        var epochs = Path.Combine(f.DataDirectory, ProducerCheckpointFile.EpochsName);
        var (_, gone) = f.Broker.InitProducer(Other); // an instance that never writes
        Assert.True(ProducerCheckpointFile.Holds(epochs, Other) && ProducerCheckpointFile.Holds(epochs, gone), $"{epochs} holds {Other:x16} at epoch {gone}");
        Eventually.True(() => (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - gone >= 500, "the retention passes after the epoch was given", TimeSpan.FromSeconds(30));
        var (_, current) = f.Broker.InitProducer(Id);
        await f.RestartAsync(ShortRetention);

        Assert.True(ProducerCheckpointFile.Holds(epochs, current), $"{epochs} holds the new epoch {current}");
        Assert.False(ProducerCheckpointFile.Holds(epochs, Other), $"{epochs} still names {Other:x16}, past the retention");
        Assert.Equal(12 + 24 + 4, new FileInfo(epochs).Length); // magic, version, count; one id, its epoch and last use; CRC32C
    }

    private static void Lose(string checkpoint, string loss, byte[] older)
    {
        switch (loss)
        {
            case "missing":
                File.Delete(checkpoint);
                break;
            case "empty":
                File.WriteAllBytes(checkpoint, []);
                break;
            case "torn":
                File.WriteAllBytes(checkpoint, File.ReadAllBytes(checkpoint)[..^7]);
                break;
            default:
                File.WriteAllBytes(checkpoint, older); // a capture from before the new epoch was given
                break;
        }
    }
}
