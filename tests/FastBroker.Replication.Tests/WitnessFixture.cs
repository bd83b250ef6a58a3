using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using FastBroker.Replication;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A real <see cref="WitnessServer"/> on 127.0.0.1 (a free port) over a temp directory, plus the clients a test opens;
/// <see cref="RestartAsync"/> stops it and starts a new one over the same directory (on the same port if asked).
/// </summary>
internal sealed class WitnessFixture : IAsyncDisposable
{
    /// <summary>Generous: a loaded CI machine may take a while to answer, and no test waits on a timeout on purpose.</summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _dir = new("fastbroker-witness");
    private readonly List<IAsyncDisposable> _owned = [];

    private WitnessFixture(WitnessOptions options)
    {
        Options = options with { DataDirectory = _dir.Path, Port = 0, Log = Log.Enqueue };
    }

    public WitnessOptions Options { get; }

    public WitnessServer Server { get; private set; } = null!;

    public string Endpoint => $"127.0.0.1:{Server.EndPoint.Port}";

    public string StatePath => Path.Combine(_dir.Path, "witness.state");

    /// <summary>What the witness logged.</summary>
    public ConcurrentQueue<string> Log { get; } = new();

    public static async Task<WitnessFixture> StartAsync(Func<WitnessOptions, WitnessOptions>? configure = null)
    {
        var f = new WitnessFixture(configure is null ? WitnessOptions.Default : configure(WitnessOptions.Default));
        try
        {
            f.Server = await WitnessServer.StartAsync(f.Options);
        }
        catch
        {
            f._dir.Dispose();
            throw;
        }

        return f;
    }

    /// <summary>Stops the witness and starts a new one over the same data directory.</summary>
    public async Task RestartAsync(bool samePort = false)
    {
        var port = Server.EndPoint.Port;
        await Server.StopAsync();
        Server = await WitnessServer.StartAsync(Options with { Port = samePort ? port : 0 });
    }

    public WitnessClient Client(TimeSpan? callTimeout = null)
    {
        var client = new WitnessClient(Endpoint, callTimeout ?? CallTimeout);
        _owned.Add(client);
        return client;
    }

    public async Task<LineConnection> ConnectRawAsync()
    {
        var c = await LineConnection.ConnectAsync(Server.EndPoint.Port);
        _owned.Add(c);
        return c;
    }

    /// <summary>Repeats <paramref name="call"/> (every few ms, with a deadline) until its result satisfies <paramref name="done"/>.</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> call, Func<T, bool> done, string because, Action<T>? each = null)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var r = await call();
            each?.Invoke(r);
            if (done(r))
            {
                return r;
            }

            if (sw.Elapsed > Eventually.DefaultTimeout)
            {
                throw new TimeoutException($"Not met within {Eventually.DefaultTimeout.TotalSeconds:0} s: {because} (last: {r})");
            }

            await Task.Delay(5); // polling interval of a condition with a deadline
        }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await Server.DisposeAsync();
        _dir.Dispose();
    }

    /// <summary>A raw TCP connection speaking lines, for what <see cref="WitnessClient"/> would never send.</summary>
    internal sealed class LineConnection : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly List<byte> _pending = [];

        private LineConnection(Socket socket) => _socket = socket;

        public static async Task<LineConnection> ConnectAsync(int port)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync("127.0.0.1", port);
            return new LineConnection(socket);
        }

        public async Task SendAsync(string text) => await SendAsync(Encoding.UTF8.GetBytes(text));

        public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes, SocketFlags.None);

        /// <summary>The next line without its terminator, or null at EOF.</summary>
        public async Task<string?> ReadLineAsync()
        {
            using var timeout = new CancellationTokenSource(Eventually.DefaultTimeout);
            var buffer = new byte[512];
            while (true)
            {
                var end = _pending.IndexOf((byte)'\n');
                if (end >= 0)
                {
                    var line = Encoding.ASCII.GetString([.. _pending.GetRange(0, end)]);
                    _pending.RemoveRange(0, end + 1);
                    return line;
                }

                var n = await _socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                if (n == 0)
                {
                    Assert.Empty(_pending); // no half line before EOF
                    return null;
                }

                _pending.AddRange(buffer.AsSpan(0, n));
            }
        }

        public async Task<string> ExpectLineAsync()
        {
            var line = await ReadLineAsync();
            Assert.NotNull(line);
            return line;
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
