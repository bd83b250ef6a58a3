using System.Buffers;
using System.Collections.Concurrent;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>A real broker on a temp directory and a real server on 127.0.0.1 with a free port; disposed in reverse.</summary>
internal sealed class ServerFixture : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("fastbroker-server");

    private ServerFixture()
    {
    }

    public Broker Broker { get; private set; } = null!;

    public BrokerServer Server { get; private set; } = null!;

    public string DataDirectory => _dir.Path;

    /// <summary>Everything the server logged (useful in failure messages; "failed" lines mean an unexpected exception).</summary>
    public ConcurrentQueue<string> Log { get; } = new();

    public System.Net.IPEndPoint EndPoint => Server.EndPoint;

    public static async Task<ServerFixture> StartAsync(Func<ServerOptions, ServerOptions>? server = null, Func<BrokerOptions, BrokerOptions>? broker = null)
    {
        var f = new ServerFixture();
        try
        {
            await f.OpenAsync(server, broker);
        }
        catch
        {
            // A start refused on purpose (the TLS option tests) must not leave its data directory in /tmp.
            f._dir.Dispose();
            throw;
        }

        return f;
    }

    /// <summary>Stops the server and the broker, runs <paramref name="whileClosed"/>, and opens both again on the same directory (a new port).</summary>
    public async Task RestartAsync(Action? whileClosed = null, Func<ServerOptions, ServerOptions>? server = null, Func<BrokerOptions, BrokerOptions>? broker = null)
    {
        await Server.DisposeAsync();
        await Broker.DisposeAsync();
        whileClosed?.Invoke();
        await OpenAsync(server, broker);
    }

    private async Task OpenAsync(Func<ServerOptions, ServerOptions>? server, Func<BrokerOptions, BrokerOptions>? broker)
    {
        var brokerOptions = BrokerOptions.Default with
        {
            DataDirectory = _dir.Path,
            DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20, MaxMessageBytes = 64 * 1024 },
        };
        Broker = await Broker.OpenAsync(broker is null ? brokerOptions : broker(brokerOptions));
        // A long heartbeat: a test that keeps a connection quiet on a slow, loaded machine must not see IdleTimeout; and a
        // long handshake timeout, which counts from the accept: a test's HELLO must not be timed out because the loaded
        // machine ran the server's reader late (the tests of that timeout set their own).
        var serverOptions = ServerOptions.Default with { Port = 0, HeartbeatInterval = TimeSpan.FromMinutes(1), HandshakeTimeout = TimeSpan.FromMinutes(1), Log = Log.Enqueue };
        try
        {
            Server = await BrokerServer.StartAsync(Broker, server is null ? serverOptions : server(serverOptions));
        }
        catch
        {
            await Broker.DisposeAsync();
            throw;
        }
    }

    /// <summary>Opens a connection and completes the handshake.</summary>
    public Task<RawConnection> ConnectAsync(Protocol.ProtocolFeatures features = RawConnection.AllFeatures, string? token = null, uint maxInboundFrameSize = 0, int? receiveBufferSize = null)
        => RawConnection.OpenAsync(EndPoint, features, token, maxInboundFrameSize, receiveBufferSize: receiveBufferSize);

    /// <summary>The log's protocol-error close lines (<c>…: closing: …</c>), in order.</summary>
    public List<string> Closes => [.. Log.Where(l => l.Contains(": closing: ", StringComparison.Ordinal))];

    /// <summary>
    /// Connects, sends a PING whose frame type is changed to one that does not exist (0x7E), reads until the server
    /// closes the connection, and asserts that it answered with one ERROR with CLOSE, which it returns.
    /// </summary>
    public async Task<ServerFrame> SendBadFrameAsync()
    {
        await using var bad = await ConnectAsync();
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.WritePing(w, 7);
        var bytes = w.WrittenMemory.ToArray();
        bytes[4] = 0x7E; // no such frame type
        await bad.SendRawAsync(bytes);
        var frames = await bad.ReadUntilClosedAsync();
        Assert.True(frames.Count == 1 && frames[0].CloseConnection, $"one ERROR with CLOSE expected, got: {string.Join(" | ", frames)}");
        return frames[0];
    }

    /// <summary>Log lines that report an unexpected exception inside the server.</summary>
    public IEnumerable<string> Failures => Log.Where(l => l.Contains(" failed: ", StringComparison.Ordinal) && !l.Contains("TLS handshake", StringComparison.Ordinal));

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Broker.DisposeAsync();
        _dir.Dispose();
    }
}
