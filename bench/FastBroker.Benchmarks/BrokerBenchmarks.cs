using BenchmarkDotNet.Attributes;

namespace FastBroker.Benchmarks;

/// <summary>
/// The embedded broker's hot path, publish → journal → deliver: each invocation publishes 1,000 100-byte
/// messages with <see cref="Broker.TryPublish"/> and fetches them back zero-copy through a subscription with a
/// struct handler. MemoryDiagnoser shows the steady state allocates nothing per message.
/// </summary>
[MemoryDiagnoser]
public class BrokerBenchmarks
{
    private const int PerInvoke = 1_000;
    private readonly byte[] _payload = new byte[100];
    private string _directory = "";
    private Broker _broker = null!;
    private Subscription _subscription = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), $"fastbroker-bdn-broker-{Environment.ProcessId}");
        var topic = TopicOptions.Default with { SegmentBytes = 64L << 20, MaxMessageBytes = 4096, RetentionBytes = 512L << 20 };
        _broker = Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = _directory, DefaultTopicOptions = topic }).AsTask().GetAwaiter().GetResult();
        _broker.CreateTopic("bdn", topic);
        _subscription = _broker.Subscribe("bdn", new SubscriptionOptions { Start = StartPosition.Latest });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _subscription.Dispose();
        _broker.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(OperationsPerInvoke = PerInvoke)]
    public long PublishJournalDeliver()
    {
        for (var i = 0; i < PerInvoke; i++)
        {
            while (!_broker.TryPublish("bdn", _payload))
            {
                Thread.Yield();
            }
        }

        var handler = new Counter();
        while (handler.Count < PerInvoke)
        {
            if (_subscription.Fetch(PerInvoke - (int)handler.Count, ref handler) == 0)
            {
                Thread.Yield();
            }
        }

        return handler.Bytes;
    }

    private struct Counter : IMessageHandler
    {
        public long Count;
        public long Bytes;

        public void OnMessage(scoped in MessageView message)
        {
            Count++;
            Bytes += message.Payload.Length;
        }
    }
}
