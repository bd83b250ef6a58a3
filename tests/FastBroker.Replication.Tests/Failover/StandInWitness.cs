using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A stand-in witness: answers the witness protocol's requests, one line each: ACQUIRE by <see cref="Answer"/> (by
/// default denied: 'a' holds the lease), STATUS that 'a' holds it, RELEASE and STANDBY as done. It answers whatever a
/// test tells it to, numbers the protocol does not allow included.
/// </summary>
internal sealed class StandInWitness : IDisposable
{
    public const long GrantedEpoch = 7;

    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly ConcurrentQueue<Socket> _accepted = new();
    private readonly Thread _acceptor;
    private int _acquires;

    public StandInWitness()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        _acceptor = new Thread(Accept) { IsBackground = true, Name = "stand-in witness" };
        _acceptor.Start();
    }

    public static Func<string, string> Deny { get; } = _ => "DENIED a 1 5000";

    /// <summary>The lease for the TTL asked for.</summary>
    public static Func<string, string> Grant { get; } = ttl => $"GRANTED {GrantedEpoch} {ttl}";

    public string Endpoint => ((IPEndPoint)_listener.LocalEndPoint!).ToString();

    /// <summary>The answer to an ACQUIRE, from the TTL it asks for (ms).</summary>
    public volatile Func<string, string> Answer = Deny;

    /// <summary>ACQUIRE requests answered so far.</summary>
    public int Acquires => Volatile.Read(ref _acquires);

    public void Dispose()
    {
        _listener.Dispose();
        _acceptor.Join();
        foreach (var s in _accepted)
        {
            s.Dispose();
        }
    }

    private void Accept()
    {
        while (true)
        {
            Socket connection;
            try
            {
                connection = _listener.Accept();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            _accepted.Enqueue(connection);
            _ = Task.Run(() => Serve(connection));
        }
    }

    private async Task Serve(Socket connection)
    {
        try
        {
            using var stream = new NetworkStream(connection, ownsSocket: false);
            using var reader = new StreamReader(stream, Encoding.ASCII);
            while (await reader.ReadLineAsync() is { } line)
            {
                var f = line.Split(' ');
                var answer = f[0] switch
                {
                    "ACQUIRE" => Answer(f[3]),
                    "STATUS" => "STATUS a 1 5000",
                    "RELEASE" => "RELEASED",
                    "STANDBY" => "STANDBY " + (f.Length > 3 && f[3] == "behind" ? "behind" : "in-sync"),
                    _ => "ERROR unknown request",
                };
                if (f[0] == "ACQUIRE")
                {
                    Interlocked.Increment(ref _acquires);
                }

                await stream.WriteAsync(Encoding.ASCII.GetBytes(answer + "\n"));
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
        }
    }
}
