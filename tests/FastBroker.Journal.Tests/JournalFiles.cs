using System.Runtime.InteropServices;

namespace FastBroker.Journal.Tests;

/// <summary>Test-side knowledge of the on-disk format (docs/journal-format.md), to damage files precisely.</summary>
internal static class JournalFiles
{
    internal const int SegmentHeaderSize = 128;

    internal static string[] Segments(string dir) => [.. Directory.GetFiles(dir, "*.seg").Order(StringComparer.Ordinal)];

    /// <summary>(position, unpadded length, offset) of every record in a segment file.</summary>
    internal static List<(int Position, int Length, long Offset)> Records(string segmentPath)
    {
        var bytes = File.ReadAllBytes(segmentPath);
        var list = new List<(int, int, long)>();
        var position = SegmentHeaderSize;
        while (position + 32 <= bytes.Length)
        {
            var length = MemoryMarshal.Read<int>(bytes.AsSpan(position));
            if (length == 0)
            {
                break;
            }

            list.Add((position, length, MemoryMarshal.Read<long>(bytes.AsSpan(position + 8))));
            position += (length + 7) & ~7;
        }

        return list;
    }

    internal static void FlipBit(string path, long position, int bit = 0)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = position;
        var b = stream.ReadByte();
        stream.Position = position;
        stream.WriteByte((byte)(b ^ (1 << bit)));
    }

    internal static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            if (!file.EndsWith(".lock", StringComparison.Ordinal))
            {
                File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
            }
        }
    }

    internal static bool AllZeroFrom(string path, long position)
    {
        var bytes = File.ReadAllBytes(path);
        return bytes.AsSpan((int)position).IndexOfAnyExcept((byte)0) < 0;
    }
}
