using System.Buffers;
using System.Globalization;
using System.Text;
using FastBroker;

/// <summary>
/// Mode <c>producers</c>: an idempotent producer publishes 10 messages to topic "t", then another publishes until the
/// process is killed, so that the first one's records leave the restart rescan (cut to 64 records). Prints "E" once the
/// first ten are confirmed, then "B &lt;n&gt;" after every thousand confirmations of the second.
/// </summary>
public static class ProducerCrash
{
    public const ulong Early = 0x0E0E_0E0E_0E0E_0E07;
    public const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;

    /// <summary>The host's options, and the test's when it opens the directory after the kill (it needs the small rescan).</summary>
    public static BrokerOptions Options(string dir) => BrokerOptions.Default with
    {
        DataDirectory = dir,
        ProducerRecoveryRecords = 64,
        AllowSmallProducerRescan = true, // tests only: a few records push a producer out of the rescan
        DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 4096 },
    };

    public static async Task<int> RunAsync(string dir, Action<string> say)
    {
        await using var broker = await Broker.OpenAsync(Options(dir));
        var sink = new Sink();
        for (var i = 0UL; i < 10; i++)
        {
            Publish(broker, sink, Early, i);
        }

        await sink.WaitForAsync(10);
        say("E");
        for (var n = 0UL; ; n += 1000)
        {
            for (var i = n; i < n + 1000; i++)
            {
                Publish(broker, sink, Busy, i);
            }

            await sink.WaitForAsync(10 + (long)n + 1000);
            say($"B {(n + 1000).ToString(CultureInfo.InvariantCulture)}");
        }
    }

    public static void Publish(Broker broker, IPublishConfirmSink sink, ulong producer, ulong sequence)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            Thread.Yield();
        }

        claim.Add("t"u8, default, default, new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{producer:x}-{sequence}")), new PublishParameters(ProducerId: producer, ProducerSequence: sequence), sink, sequence);
        claim.Commit();
    }

    internal sealed class Sink : IPublishConfirmSink
    {
        private long _count;
        private string? _failure;

        public void OnPublishConfirmed(ulong token, long offset, bool duplicate) => Interlocked.Increment(ref _count);

        public void OnPublishFailed(ulong token, BrokerErrorCode code, string reason)
        {
            _failure = $"{token}: {code} {reason}";
            Interlocked.Increment(ref _count);
        }

        public async Task WaitForAsync(long count)
        {
            while (Interlocked.Read(ref _count) < count)
            {
                await Task.Delay(1);
            }

            if (_failure is not null)
            {
                throw new InvalidOperationException($"a publish failed: {_failure}");
            }
        }
    }
}
