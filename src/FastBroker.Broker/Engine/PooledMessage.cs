namespace FastBroker.Engine;

/// <summary>
/// A work-queue message copied out of its topic while it is outstanding, shared by the group's cache and the
/// member queues it sits in; reference-counted so its buffer goes back to the group's pool only when nobody can
/// still read it (a redelivery may overlap a slow first member).
/// </summary>
internal sealed class PooledMessage
{
    private int _refs;

    public byte[] Buffer = new byte[256];
    public long Offset;
    public long Timestamp;
    public ushort Flags;
    public int KeyLength;
    public int HeadersLength;
    public int PayloadLength;

    public ReadOnlySpan<byte> Key => Buffer.AsSpan(0, KeyLength);

    public ReadOnlySpan<byte> Headers => Buffer.AsSpan(KeyLength, HeadersLength);

    public ReadOnlySpan<byte> Payload => Buffer.AsSpan(KeyLength + HeadersLength, PayloadLength);

    public void Fill(scoped in MessageView m, ushort flags)
    {
        var total = m.Key.Length + m.Headers.Length + m.Payload.Length;
        if (Buffer.Length < total)
        {
            Buffer = new byte[Math.Max(total, Buffer.Length * 2)];
        }

        m.Key.CopyTo(Buffer);
        m.Headers.CopyTo(Buffer.AsSpan(m.Key.Length));
        m.Payload.CopyTo(Buffer.AsSpan(m.Key.Length + m.Headers.Length));
        KeyLength = m.Key.Length;
        HeadersLength = m.Headers.Length;
        PayloadLength = m.Payload.Length;
        Offset = m.Offset;
        Timestamp = m.Timestamp;
        Flags = flags;
        Volatile.Write(ref _refs, 1);
    }

    public MessageView View(TopicState topic, int deliveryCount) => new(topic, Offset, Timestamp, Key, Headers, Payload, deliveryCount);

    public void AddRef() => Interlocked.Increment(ref _refs);

    /// <summary>Drops one reference; true when it was the last.</summary>
    public bool Release() => Interlocked.Decrement(ref _refs) == 0;
}
