using System.Net;
using System.Net.Sockets;

namespace FastBroker.ClientTests;

/// <summary>
/// A TCP proxy between a client and the server that can lose the server's bytes (to make publishes stored but
/// unconfirmed) and cut every connection: connection loss on demand, deterministic, without killing the server.
/// </summary>
internal sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly Task _accept;
    private volatile bool _dropServerBytes;

    public TcpProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start();
        _accept = Task.Run(AcceptAsync);
    }

    public string Endpoint => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>While true, what the server sends is read and thrown away (CONFIRMs, deliveries…).</summary>
    public bool DropServerBytes
    {
        get => _dropServerBytes;
        set => _dropServerBytes = value;
    }

    /// <summary>Closes every proxied connection (both sides); new ones are still accepted.</summary>
    public void CutAll()
    {
        lock (_sockets)
        {
            foreach (var s in _sockets)
            {
                s.Dispose();
            }

            _sockets.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        CutAll();
        try
        {
            await _accept;
        }
        catch (Exception)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            Socket server;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
                server = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await server.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            client.NoDelay = true;
            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(server);
            }

            _ = PumpAsync(client, server, drop: false);
            _ = PumpAsync(server, client, drop: true);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool drop)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token)) > 0)
            {
                if (drop && _dropServerBytes)
                {
                    continue;
                }

                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception)
        {
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }
}
