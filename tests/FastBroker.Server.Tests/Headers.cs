using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>Builds header blocks (and SUBSCRIBE filter blocks) from name/value text pairs.</summary>
internal static class Headers
{
    public static byte[] Of(params (string Name, string Value)[] entries)
        => Of([.. entries.Select(e => (e.Name, Encoding.UTF8.GetBytes(e.Value)))]);

    public static byte[] Of(params (string Name, byte[] Value)[] entries)
    {
        var buffer = new byte[entries.Sum(e => HeaderBlockWriter.GetEntryLength(Encoding.UTF8.GetByteCount(e.Name), e.Value.Length))];
        var w = new HeaderBlockWriter(buffer);
        foreach (var (name, value) in entries)
        {
            Assert.True(w.TryAdd(Encoding.UTF8.GetBytes(name), value));
        }

        return w.WrittenSpan.ToArray();
    }

    /// <summary>The value of the first header called <paramref name="name"/> in an encoded block, as text.</summary>
    public static string? Get(byte[] block, string name)
    {
        var reader = new FastBroker.Journal.RecordHeaderReader(block);
        var utf8 = Encoding.UTF8.GetBytes(name);
        while (reader.TryReadNext(out var n, out var v))
        {
            if (n.SequenceEqual(utf8))
            {
                return Encoding.UTF8.GetString(v);
            }
        }

        return null;
    }
}
