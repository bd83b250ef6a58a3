using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A topic's retention floor holds its idempotent records written after the capture point of the last
/// <c>producers.state</c> on disk (what a restart after a kill -9 rescans to know the producers the file does not name),
/// asks for a capture when it does, and lets go once that capture is written, also on an idle broker (the journaler is
/// woken). Records of no idempotent producer hold nothing. The end-to-end case, a kill -9 after retention deleted such
/// records: <c>ProducerRetentionCrashTests</c>.
/// </summary>
public sealed class ProducerRetentionHoldTests
{
    private const ulong Id = 0x7E7E_0000_0000_0003;

    [Fact]
    public async Task Idempotent_records_after_the_last_capture_hold_retention_until_the_capture_it_asks_for_is_written()
    {
        // No retention limits: the journal's flusher never asks the floor, so only this test's calls ask for captures.
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("t");
        f.Broker.CreateTopic("plain");
        var sink = new ClaimPublishTests.RecordingSink();
        ClaimPublishTests.PublishRun(f.Broker, sink, Id, 0, 5, "p");
        await sink.WaitForAsync(5);
        for (var i = 0; i < 10; i++)
        {
            await f.Broker.PublishAsync("plain", new byte[10]);
        }

        // "t" was created after the open's capture, the only one written: no file names its producer's records.
        Assert.Equal(long.MinValue, f.Broker.RetentionFloorOf("t"));
        Assert.Equal(10, f.Broker.RetentionFloorOf("plain")); // its journal's end: nothing idempotent to keep

        // The ask is answered with nothing else published: then the file names the records, and nothing holds them.
        await Eventually.TrueAsync(() => f.Broker.RetentionFloorOf("t") == 5, "the capture asked for is written");

        ClaimPublishTests.PublishIdempotent(f.Broker, sink, Id, 5, "t", "p5", 5);
        await sink.WaitForAsync(6);
        Assert.Equal(5, f.Broker.RetentionFloorOf("t")); // held at the written capture's point
        await Eventually.TrueAsync(() => f.Broker.RetentionFloorOf("t") == 6, "the next capture asked for is written");

        await f.Broker.PublishAsync("t", new byte[10]); // a plain record after the point holds nothing
        Assert.Equal(7, f.Broker.RetentionFloorOf("t"));
    }
}
