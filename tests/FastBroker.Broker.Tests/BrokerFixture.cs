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

    public static BrokerOptions Options(string dir) => BrokerOptions.Default with
    {
        DataDirectory = dir,
        DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20, MaxMessageBytes = 64 * 1024 },
    };

    /// <summary>Closes the broker, runs <paramref name="whileClosed"/> (e.g. to damage or add files), opens it again.</summary>
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
