namespace FastBroker.Journal.CrashHost;

/// <summary>The payload of every offset is a function of the offset, so the test can check each byte after a crash.</summary>
public static class CrashPayload
{
    /// <summary>The journal options both the host and the verifying test use (small segments: many rolls).</summary>
    public static JournalOptions Options { get; } = new()
    {
        SegmentSize = 256 << 10,
        IndexIntervalBytes = 4096,
        Durability = DurabilityPolicy.GroupCommit,
    };

    /// <summary>1..400 bytes, never ending in zero (so a cut record can never look whole).</summary>
    public static byte[] For(long offset)
    {
        var bytes = new byte[1 + (int)((offset * 7919) % 400)];
        Fill(offset, bytes);
        return bytes;
    }

    /// <summary>Writes <see cref="For"/>'s bytes into a buffer of the right length.</summary>
    public static void Fill(long offset, Span<byte> bytes)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)((offset * 131) + (i * 17) + 3);
        }

        bytes[^1] |= 0x80;
    }

    /// <summary>Length of <see cref="For"/>(offset).</summary>
    public static int LengthFor(long offset) => 1 + (int)((offset * 7919) % 400);
}
