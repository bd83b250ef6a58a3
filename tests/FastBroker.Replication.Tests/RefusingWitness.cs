using System.Net;
using System.Net.Sockets;
using System.Text;
using FastBroker.Replication;
using FastBroker.Replication.Internal;

namespace FastBroker.ReplicationTests;

/// <summary>
/// A fake witness for <see cref="EpochExhaustionTests"/> that counts the asks for the lease and answers each as a real
/// witness answers a new holder at epoch 2^63 - 2 (<c>ERROR no new epoch can follow epoch 9223372036854775806: …</c>,
/// the text <see cref="WitnessServer"/> sends); STATUS: no holder.
/// </summary>
internal sealed class RefusingWitness : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly Thread _thread;
    private int _asks;

    public RefusingWitness()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        Endpoint = $"127.0.0.1:{((IPEndPoint)_listener.LocalEndPoint!).Port}";
        _thread = new Thread(Serve) { IsBackground = true, Name = "refusing-witness" };
        _thread.Start();
    }

    public string Endpoint { get; }

    /// <summary>How many ACQUIREs it refused.</summary>
    public int Asks => Volatile.Read(ref _asks);

    public void Dispose()
    {
        _listener.Dispose();
        _thread.Join(TimeSpan.FromSeconds(10));
    }

    private void Serve()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = _listener.Accept();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            // One connection at a time is enough: the node's client keeps one, and makes a new one after a failure.
            using (socket)
            using (var stream = new NetworkStream(socket))
            using (var reader = new StreamReader(stream, Encoding.ASCII))
            {
                try
                {
                    while (reader.ReadLine() is { } line)
                    {
                        var answer = line.StartsWith("ACQUIRE ", StringComparison.Ordinal)
                            ? WitnessProtocol.FormatError(NodeState.NoEpochAfter(NodeState.MaxEpoch)!)
                            : line == "STATUS" ? WitnessProtocol.FormatStatus(null, 0, 0) : WitnessProtocol.FormatError("unexpected request");
                        if (line.StartsWith("ACQUIRE ", StringComparison.Ordinal))
                        {
                            Interlocked.Increment(ref _asks);
                        }

                        stream.Write(Encoding.ASCII.GetBytes(answer));
                    }
                }
                catch (IOException)
                {
                    // The node closed or reset its connection: it connects again.
                }
            }
        }
    }
}
