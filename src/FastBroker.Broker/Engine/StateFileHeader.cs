using System.Buffers.Binary;

using FastBroker.Storage;

namespace FastBroker.Engine;

/// <summary>
/// What a state file's header holds (its magic and the slots after it), read without mapping or changing the file:
/// <see cref="MappedStateFile.Open"/> pads a short file with zeros, which would change a file that is then refused.
/// Shared by <see cref="GroupAckStore"/> and <see cref="PositionStore"/>, whose headers both start with an 8-byte magic.
/// </summary>
internal readonly record struct StateFileHeader
{
    private readonly long[] _slots;

    private StateFileHeader(StateFileContents contents, long length, string reason, long[]? slots = null)
    {
        Contents = contents;
        Length = length;
        Reason = reason;
        _slots = slots ?? [];
    }

    /// <summary>What the file holds.</summary>
    public StateFileContents Contents { get; init; }

    /// <summary>The file's length in bytes (0 when missing or unreadable).</summary>
    public long Length { get; }

    /// <summary>
    /// Why the file is what it is, in words for a report or an error: "empty", a wrong magic (with the bytes of one too
    /// short for it), "cut short before its …", "unreadable: …".
    /// </summary>
    public string Reason { get; init; }

    /// <summary>The header slot at <paramref name="index"/> (slot 0 is the magic); only for <see cref="StateFileContents.State"/>.</summary>
    public long Slot(int index) => _slots[index];

    /// <summary>
    /// Reads the first <paramref name="slots"/> 8-byte slots of <paramref name="path"/>, slot 0 holding
    /// <paramref name="magic"/>. Zeros where the magic belongs (or an empty file) hold no state; so does a file cut short
    /// after its magic, before its last header slot (<paramref name="lastSlot"/>: what that slot is, for the reason).
    /// A magic that is neither, or a file that cannot be read (a directory at its path, a symbolic link whose target is
    /// missing), is <see cref="StateFileContents.Damaged"/>.
    /// <paramref name="kind"/> names the file in the reason ("group state file").
    /// </summary>
    public static StateFileHeader Read(string path, long magic, int slots, string kind, string lastSlot)
    {
        Span<byte> header = stackalloc byte[slots * 8];
        int n;
        long length;
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            length = file.Length;
            n = file.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // A symbolic link whose target is missing (on a volume not mounted, say) is no missing file: the state it
            // points to may come back, so it is unreadable, refused and left as it is, not taken for a new group's or
            // subscription's (whose start would skip what it had not acked or committed).
            return LinkTargetOf(path) is { } target
                ? new(StateFileContents.Damaged, 0, $"unreadable: a symbolic link to {target}, which is missing")
                : new(StateFileContents.Missing, 0, "missing");
        }
        catch (Exception e) when ((e is IOException or UnauthorizedAccessException) && !ResourceShortage.Is(e))
        {
            // A shortage (out of descriptors, say) says nothing about the file: it propagates, so that no caller takes
            // a file it could not open now for a damaged one (refused, or replaced by a standby). An I/O error of the
            // device (EIO) is no shortage: the file is unreadable, as damaged.
            return new(StateFileContents.Damaged, 0, $"unreadable: {e.Message}");
        }

        if (!header[..Math.Min(n, 8)].ContainsAnyExcept((byte)0))
        {
            return new(StateFileContents.NoState, length, n == 0 ? "empty" : "zeros where its magic belongs");
        }

        if (n < 8)
        {
            return new(StateFileContents.Damaged, length, $"{n} bytes (0x{Convert.ToHexString(header[..n])}), shorter than a {kind}'s magic and not zeros");
        }

        var found = BinaryPrimitives.ReadInt64LittleEndian(header);
        if (found != magic)
        {
            return new(StateFileContents.Damaged, length, $"magic 0x{found:X16}, not a {kind}'s 0x{magic:X16}");
        }

        if (n < header.Length)
        {
            return new(StateFileContents.NoState, length, $"{n} bytes: a {kind}'s magic, cut short before its {lastSlot}");
        }

        var values = new long[slots];
        for (var i = 0; i < slots; i++)
        {
            values[i] = BinaryPrimitives.ReadInt64LittleEndian(header[(i * 8)..]);
        }

        return new(StateFileContents.State, length, $"a {kind}", values);
    }

    /// <summary>The target of the symbolic link at <paramref name="path"/>; null when there is none (or it cannot be read).</summary>
    private static string? LinkTargetOf(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
