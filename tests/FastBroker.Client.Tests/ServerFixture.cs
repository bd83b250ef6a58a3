using System.Collections.Concurrent;
using FastBroker.Client;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ClientTests;

/// <summary>
/// A real broker on a temp directory behind a real server on 127.0.0.1 (a free port), plus the clients a test
/// connects; everything is disposed in reverse. <see cref="RestartServerAsync"/> stops the server and starts a new
/// one on the same port over the same broker (a graceful restart; kill -9 is <see cref="HostProcess"/>'s job).
/// </summary>
internal sealed class ServerFixture : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("fastbroker-client");
    private readonly List<BrokerClient> _clients = [];
    private Func<ServerOptions, ServerOptions>? _server;
    private BrokerOptions _brokerOptions = BrokerOptions.Default;

    private ServerFixture()
    {
    }

    public Broker Broker { get; private set; } = null!;

    public BrokerServer Server { get; private set; } = null!;

    public int Port => Server.EndPoint.Port;

    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>The broker's data directory.</summary>
    public string DataDirectory => _dir.Path;

    /// <summary>What the server logged.</summary>
    public ConcurrentQueue<string> Log { get; } = new();

    /// <summary>What the clients reported through OnEvent.</summary>
    public ConcurrentQueue<BrokerClientEvent> Events { get; } = new();

    public static async Task<ServerFixture> StartAsync(Func<ServerOptions, ServerOptions>? server = null, Func<BrokerOptions, BrokerOptions>? broker = null)
    {
        var f = new ServerFixture { _server = server };
        var brokerOptions = BrokerOptions.Default with
        {
            DataDirectory = f._dir.Path,
            DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4L << 20, MaxMessageBytes = 256 * 1024 },
            TimerResolution = TimeSpan.FromMilliseconds(5),
        };
        f._brokerOptions = broker is null ? brokerOptions : broker(brokerOptions);
        f.Broker = await Broker.OpenAsync(f._brokerOptions);
        try
        {
            f.Server = await BrokerServer.StartAsync(f.Broker, f.ServerOptions(0));
        }
        catch
        {
            await f.Broker.DisposeAsync();
            f._dir.Dispose();
            throw;
        }

        return f;
    }

    /// <summary>Connects a client to this server; it is disposed with the fixture.</summary>
    public async Task<BrokerClient> ConnectAsync(Func<BrokerClientOptions, BrokerClientOptions>? configure = null)
    {
        var options = ClientOptions();
        var client = await BrokerClient.ConnectAsync(configure is null ? options : configure(options));
        lock (_clients)
        {
            _clients.Add(client);
        }

        return client;
    }

    public BrokerClientOptions ClientOptions() => BrokerClientOptions.Default with
    {
        Endpoints = [Endpoint],
        ReconnectTimeout = TimeSpan.FromSeconds(120),
        ConnectTimeout = TimeSpan.FromSeconds(30),
        OnEvent = Events.Enqueue,
    };

    /// <summary>Graceful stop of the server (clients see ERROR Closed and reconnect), then a new one on the same port.</summary>
    public async Task RestartServerAsync()
    {
        var port = Port;
        await Server.StopAsync(TimeSpan.FromSeconds(10));
        await Server.DisposeAsync();
        Server = await SamePort.RebindAsync(() => BrokerServer.StartAsync(Broker, ServerOptions(port)));
    }

    /// <summary>
    /// Graceful stop of the server and the broker, then both again on the same port and data directory: what the
    /// journal holds survives, transient topics start again at offset 0. <paramref name="beforeServing"/> runs on the
    /// new broker before the new server listens: what it publishes is stored before any client is back;
    /// <paramref name="beforeOpen"/> runs between the close and the open, on the data directory.
    /// </summary>
    public async Task RestartBrokerAsync(Func<Broker, Task>? beforeServing = null, Action? beforeOpen = null)
    {
        var port = Port;
        await Server.StopAsync(TimeSpan.FromSeconds(10));
        await Server.DisposeAsync();
        await Broker.DisposeAsync();
        beforeOpen?.Invoke();
        Broker = await Broker.OpenAsync(_brokerOptions);
        if (beforeServing is not null)
        {
            await beforeServing(Broker);
        }

        Server = await SamePort.RebindAsync(() => BrokerServer.StartAsync(Broker, ServerOptions(port)));
    }

    /// <summary>
    /// Graceful stop of the server, the broker closed, then a new server on the same port over the closed broker: it
    /// completes handshakes and answers what needs the broker (a SUBSCRIBE) with ERROR <c>Closed</c>, as a server whose
    /// broker is shutting down does. <see cref="RestartBrokerAsync"/> opens the broker again.
    /// </summary>
    public async Task ServeClosedBrokerAsync()
    {
        var port = Port;
        await Server.StopAsync(TimeSpan.FromSeconds(10));
        await Server.DisposeAsync();
        await Broker.DisposeAsync();
        Server = await SamePort.RebindAsync(() => BrokerServer.StartAsync(Broker, ServerOptions(port)));
    }

    /// <summary>Stops the server for good (clients cannot reconnect).</summary>
    public async Task StopServerAsync() => await Server.StopAsync(TimeSpan.FromSeconds(10));

    public async ValueTask DisposeAsync()
    {
        BrokerClient[] clients;
        lock (_clients)
        {
            clients = [.. _clients];
        }

        foreach (var c in clients)
        {
            await c.DisposeAsync();
        }

        await Server.DisposeAsync();
        await Broker.DisposeAsync();
        _dir.Dispose();
    }

    private ServerOptions ServerOptions(int port)
    {
        var options = FastBroker.Server.ServerOptions.Default with { Host = "127.0.0.1", Port = port, Log = Log.Enqueue };
        return _server is null ? options : _server(options);
    }
}
