using System.Buffers.Binary;

namespace FastBroker.Testing;

/// <summary>
/// The broker's idempotent producers' checkpoint (<c>producers.state</c> in a data directory) and the producer epochs it
/// gave (<c>producers.epochs</c>), as tests look at them.
/// </summary>
public static class ProducerCheckpointFile
{
    public const string Name = "producers.state";

    /// <summary>The file of the producer epochs given, written durably before each new epoch is answered.</summary>
    public const string EpochsName = "producers.epochs";

    /// <summary>
    /// Whether the checkpoint at <paramref name="path"/> names <paramref name="producer"/> (its id, little-endian, as an
    /// entry's first field: pick ids no other field matches). False while the file does not exist.
    /// </summary>
    public static bool Names(string path, ulong producer) => Holds(path, producer);

    /// <summary>
    /// Whether the checkpoint at <paramref name="path"/> has an entry of <paramref name="producer"/> whose highest
    /// sequence is <paramref name="sequence"/> (the id and the sequence side by side). False while the file does not exist.
    /// </summary>
    public static bool NamesAt(string path, ulong producer, ulong sequence)
    {
        Span<byte> entry = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(entry, producer);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], sequence);
        return Contains(path, entry);
    }

    /// <summary>
    /// Whether the checkpoint (or epochs file) at <paramref name="path"/> holds <paramref name="value"/> (little-endian) anywhere: a producer
    /// id, or a producer epoch (Unix ms when given: no other field matches it). False while the file does not exist.
    /// </summary>
    public static bool Holds(string path, ulong value)
    {
        Span<byte> id = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(id, value);
        return Contains(path, id);
    }

    private static bool Contains(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] file;
        try
        {
            file = File.ReadAllBytes(path);
        }
        catch (IOException)
        {
            return false;
        }

        return file.AsSpan().IndexOf(bytes) >= 0;
    }
}
