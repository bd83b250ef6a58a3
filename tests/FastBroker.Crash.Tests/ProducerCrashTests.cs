using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process hosting the broker while one idempotent producer's records are being pushed out of the restart
/// rescan by another's: the producers' checkpoint (<c>producers.state</c>, captured by the journaler as it writes, not
/// at close) keeps the first producer known, so its retry of a stored message is refused instead of stored again.
/// </summary>
public class ProducerCrashTests
{
    private const ulong Early = 0x0E0E_0E0E_0E0E_0E07; // as in the crash host's ProducerCrash
    private const int Others = 20_000;

    [Fact]
    public async Task After_a_kill_9_a_producer_pushed_out_of_the_rescan_is_still_deduplicated()
    {
        Assert.True(File.Exists(BrokerCrashTests.HostPath), $"crash host not built next to the tests: {BrokerCrashTests.HostPath}");
        using var dir = new TempDirectory("fastbroker-producer-crash");
        var checkpoint = Path.Combine(dir.Path, ProducerCheckpointFile.Name);
        using (var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "producers"))
        {
            Eventually.True(() => Busy(child) >= Others || child.HasExited, $"the second producer has {Others} confirmed", TimeSpan.FromSeconds(120));
            Assert.False(child.HasExited, $"the crash host exited: {child.Errors}");
            Eventually.True(() => ProducerCheckpointFile.Names(checkpoint, Early), "a capture of the journaler names the first producer", TimeSpan.FromSeconds(30));
            child.Kill();
        }

        // The host's options: a rescan of 64 records, below the minimum the public options take (the host sees the internals).
        await using var broker = await Broker.OpenAsync(ProducerCrash.Options(dir.Path));
        var head = broker.GetSnapshot().Topics.Single(t => t.Name == "t").Head;
        Assert.True(head >= 10 + Others, $"head {head}");
        Assert.Equal(10UL, broker.NextProducerSequence(Early));

        var sink = new Sink();
        Publish(broker, sink, Early, 5); // stored at offset 5, long out of the rescan
        Publish(broker, sink, Early, 9); // the checkpoint's own record
        Eventually.True(() => sink.Outcomes.Count == 2, "both retries are answered");
        var outcomes = sink.Outcomes.OrderBy(o => o.Token).ToList();
        Assert.Equal((5UL, -1L, BrokerErrorCode.InvalidArgument), outcomes[0]);
        Assert.Equal((9UL, 9L, BrokerErrorCode.None), outcomes[1]);
        Assert.Equal(head, broker.GetSnapshot().Topics.Single(t => t.Name == "t").Head);
    }

    private static long Busy(ChildProcess child) =>
        child.Lines.Where(l => l.StartsWith("B ", StringComparison.Ordinal)).Select(l => long.Parse(l[2..], CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();

    private static void Publish(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence)
    {
        Assert.True(broker.TryBeginPublish(1, out var claim));
        claim.Add("t"u8, default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), new PublishParameters(ProducerId: producer, ProducerSequence: sequence), sink, sequence);
        claim.Commit();
    }

    private sealed class Sink : IPublishConfirmSink
    {
        public ConcurrentQueue<(ulong Token, long Offset, BrokerErrorCode Error)> Outcomes { get; } = new();

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Outcomes.Enqueue((token, offset, BrokerErrorCode.None));

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason) => Outcomes.Enqueue((token, -1, code));
    }
}
