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
internal sealed class RefusingWitness : LoopbackFake
{
    private int _asks;

    public RefusingWitness()
        : base("refusing-witness") => Start();

    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>How many ACQUIREs it refused.</summary>
    public int Asks => Volatile.Read(ref _asks);

    // One connection at a time is enough: the node's client keeps one, and makes a new one after a failure.
    protected override bool Serve(Socket socket)
    {
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.ASCII);
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

        return true;
    }
}
