using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>Opens an embedded broker on a fresh temp directory and cleans up after.</summary>
internal sealed class BrokerFixture : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("fastbroker-broker");

    private BrokerFixture()
    {
    }

    public Broker Broker { get; private set; } = null!;

    public string DataDirectory => _dir.Path;

    public static async Task<BrokerFixture> StartAsync(Func<BrokerOptions, BrokerOptions>? configure = null)
    {
        var f = new BrokerFixture();
        var options = Options(f._dir.Path);
        f.Broker = await Broker.OpenAsync(configure is null ? options : configure(options));
        return f;
    }

    /// <summary>
    /// A broker whose input ring has 8 slots (so <see cref="Broker.MaxPublishClaim"/> is 2) and the topics <c>a</c> and
    /// <c>other</c>: the claim-cap and failed-publish tests claim parts of the ring and check another topic goes on.
    /// </summary>
    public static async Task<BrokerFixture> StartWithRingOf8Async()
    {
        var f = await StartAsync(o => o with { InputRingSize = 8 });
        f.Broker.CreateTopic("a");
        f.Broker.CreateTopic("other");
        return f;
    }

    public static BrokerOptions Options(string dir) => BrokerOptions.Default with
    {
        DataDirectory = dir,
        DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20, MaxMessageBytes = 64 * 1024 },
    };

    /// <summary>Closes the broker, runs <paramref name="whileClosed"/> (e.g. damage its files), opens it again.</summary>
    public async Task RestartAsync(Func<BrokerOptions, BrokerOptions>? configure = null, Action? whileClosed = null)
    {
        await Broker.DisposeAsync();
        whileClosed?.Invoke();
        var options = Options(_dir.Path);
        Broker = await Broker.OpenAsync(configure is null ? options : configure(options));
    }

    public async ValueTask DisposeAsync()
    {
        await Broker.DisposeAsync();
        _dir.Dispose();
    }

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}

/// <summary>Collects offsets and payloads (test-only: allocates).</summary>
internal sealed class Collected
{
    public List<(string Topic, long Offset, string Payload, int DeliveryCount)> Items { get; } = [];
}

/// <summary>A struct handler that records what it sees into a shared <see cref="Collected"/>.</summary>
internal readonly struct Recorder(Collected into) : IMessageHandler
{
    public void OnMessage(scoped in MessageView message) =>
        into.Items.Add((message.Topic, message.Offset, Encoding.UTF8.GetString(message.Payload), message.DeliveryCount));
}

/// <summary>A <see cref="Recorder"/> for a handler called on another thread: records under the collection's lock.</summary>
internal readonly struct LockedRecorder(Collected into) : IMessageHandler
{
    public void OnMessage(scoped in MessageView message)
    {
        lock (into)
        {
            into.Items.Add((message.Topic, message.Offset, Encoding.UTF8.GetString(message.Payload), 0));
        }
    }
}

/// <summary>Reading what a subscription or a work-queue member has, with deadlines.</summary>
internal static class Consume
{
    /// <summary>Fetches until <paramref name="expected"/> messages arrived, then once more (nothing more may come).</summary>
    public static List<(string Topic, long Offset, string Payload, int DeliveryCount)> Drain(Subscription s, int expected)
    {
        var c = new Collected();
        var r = new Recorder(c);
        Eventually.True(() =>
        {
            s.Fetch(1000, ref r);
            return c.Items.Count >= expected;
        }, $"{expected} messages arrive");
        s.Fetch(1000, ref r); // nothing more may come
        return c.Items;
    }

    /// <summary>Waits for the member's next delivery.</summary>
    public static (string Topic, long Offset, string Payload, int DeliveryCount) FetchOne(WorkQueueMember member, string because) =>
        FetchMany(member, 1, because)[0];

    /// <summary>Waits until the member has been handed <paramref name="count"/> deliveries.</summary>
    public static List<(string Topic, long Offset, string Payload, int DeliveryCount)> FetchMany(WorkQueueMember member, int count, string because)
    {
        var got = new Collected();
        Eventually.True(() =>
        {
            var r = new Recorder(got);
            member.Fetch(count - got.Items.Count, ref r);
            return got.Items.Count == count;
        }, because);
        return got.Items;
    }
}
