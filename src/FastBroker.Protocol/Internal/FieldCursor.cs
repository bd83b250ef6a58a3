using System.Buffers;

namespace FastBroker.Protocol.Internal;

/// <summary>
/// Reads the fields of one frame body (whose length is already known) and remembers the first failure as a
/// constant field name and reason. Every read checks bounds against the body, never the connection buffer.
/// </summary>
internal ref struct FieldCursor
{
    private SequenceReader<byte> _reader;
    private readonly Span<byte> _scratch;

    /// <param name="body">The bytes to read.</param>
    /// <param name="scratch">Where names that straddle segments are copied: 255 bytes per name slot.</param>
    public FieldCursor(ReadOnlySequence<byte> body, Span<byte> scratch)
    {
        _reader = new SequenceReader<byte>(body);
        _scratch = scratch;
        Field = null;
        Reason = null;
    }

    public string? Field { get; private set; }

    public string? Reason { get; private set; }

    public readonly long Remaining => _reader.Remaining;

    public readonly SequencePosition Position => _reader.Position;

    public readonly ReadOnlySequence<byte> Sequence => _reader.Sequence;

    public readonly Span<byte> Scratch => _scratch;

    /// <summary>The unread bytes as one span, when the body lies within one buffer segment.</summary>
    public readonly bool TryGetContiguousUnread(out ReadOnlySpan<byte> unread)
    {
        unread = _reader.Sequence.IsSingleSegment ? _reader.UnreadSpan : default;
        return _reader.Sequence.IsSingleSegment;
    }

    /// <summary>Moves past <paramref name="count"/> bytes already checked (at most <see cref="Remaining"/>).</summary>
    public void Advance(long count) => _reader.Advance(count);

    public bool Fail(string? field, string reason)
    {
        Field = field;
        Reason = reason;
        return false;
    }

    public bool U8(string field, out byte value) => _reader.TryRead(out value) || Fail(field, Reasons.FieldOverruns);

    public bool U16(string field, out ushort value)
    {
        if (_reader.TryReadLittleEndian(out short raw))
        {
            value = (ushort)raw;
            return true;
        }

        value = 0;
        return Fail(field, Reasons.FieldOverruns);
    }

    public bool U32(string field, out uint value)
    {
        if (_reader.TryReadLittleEndian(out int raw))
        {
            value = (uint)raw;
            return true;
        }

        value = 0;
        return Fail(field, Reasons.FieldOverruns);
    }

    public bool U64(string field, out ulong value)
    {
        if (_reader.TryReadLittleEndian(out long raw))
        {
            value = (ulong)raw;
            return true;
        }

        value = 0;
        return Fail(field, Reasons.FieldOverruns);
    }

    public bool I64(string field, out long value) => _reader.TryReadLittleEndian(out value) || Fail(field, Reasons.FieldOverruns);

    public bool SubscriptionId(out uint value)
    {
        if (!U32("subscriptionId", out value))
        {
            return false;
        }

        return value != 0 || Fail("subscriptionId", Reasons.ZeroSubscriptionId);
    }

    public bool Reserved8(string field) => U8(field, out var v) && (v == 0 || Fail(field, Reasons.ReservedField));

    public bool Reserved16(string field) => U16(field, out var v) && (v == 0 || Fail(field, Reasons.ReservedField));

    public bool Reserved32(string field) => U32(field, out var v) && (v == 0 || Fail(field, Reasons.ReservedField));

    /// <summary>A <c>str8</c>: u8 length, UTF-8. Returned contiguous: copied into name slot <paramref name="slot"/> of the scratch only when it straddles segments.</summary>
    public bool Str8(string field, int slot, bool allowEmpty, out ReadOnlySpan<byte> value)
    {
        value = default;
        if (!_reader.TryRead(out var length))
        {
            return Fail(field, Reasons.FieldOverruns);
        }

        if (length == 0)
        {
            return allowEmpty || Fail(field, Reasons.Empty);
        }

        if (_reader.Remaining < length)
        {
            return Fail(field, Reasons.FieldOverruns);
        }

        var unread = _reader.UnreadSpan;
        if (unread.Length >= length)
        {
            value = unread[..length];
        }
        else
        {
            var copy = _scratch.Slice(slot * ProtocolConstants.MaxNameLength, length);
            _reader.TryCopyTo(copy);
            value = copy;
        }

        _reader.Advance(length);
        return Utf8Validation.IsValid(value) || Fail(field, Reasons.InvalidUtf8);
    }

    /// <summary>A <c>str16</c>: u16 length, UTF-8, validated across segments.</summary>
    public bool Str16(string field, out ReadOnlySequence<byte> value)
        => Bytes16(field, out value) && (Utf8Validation.IsValid(value) || Fail(field, Reasons.InvalidUtf8));

    /// <summary>A <c>bytes16</c>: u16 length, bytes.</summary>
    public bool Bytes16(string field, out ReadOnlySequence<byte> value)
    {
        value = default;
        return U16(field, out var length) && Take(field, length, out value);
    }

    /// <summary>A <c>bytes32</c>: u32 length, bytes.</summary>
    public bool Bytes32(string field, out ReadOnlySequence<byte> value)
    {
        value = default;
        return U32(field, out var length) && Take(field, length, out value);
    }

    /// <summary>Exactly <paramref name="length"/> bytes as a slice of the body.</summary>
    public bool Take(string field, long length, out ReadOnlySequence<byte> value)
    {
        if (_reader.Remaining < length)
        {
            value = default;
            return Fail(field, Reasons.FieldOverruns);
        }

        value = _reader.UnreadSequence.Slice(0, length);
        _reader.Advance(length);
        return true;
    }

    /// <summary>A header block: u32 byte length, then entries (str8 name, non-empty; bytes16 value) filling it exactly.</summary>
    public bool Headers(string field, out HeaderBlock value)
    {
        value = default;
        if (!Bytes32(field, out var block))
        {
            return false;
        }

        if (block.IsEmpty)
        {
            value = new HeaderBlock(block, 0); // the usual case: no cursor over nothing
            return true;
        }

        // Names are only validated here, never returned: a private buffer for those that straddle segments.
        var entries = new FieldCursor(block, stackalloc byte[ProtocolConstants.MaxNameLength]);
        var count = 0;
        while (entries.Remaining > 0)
        {
            if (!entries.Str8(field, 0, allowEmpty: false, out _) || !entries.Bytes16(field, out _))
            {
                return Fail(field, entries.Reason == Reasons.FieldOverruns ? Reasons.HeaderEntryOverruns : entries.Reason!);
            }

            count++;
        }

        value = new HeaderBlock(block, count);
        return true;
    }

    /// <summary>The message block (key, headers, payload) and the slice that covers all three.</summary>
    public bool Message(out ReadOnlySequence<byte> key, out HeaderBlock headers, out ReadOnlySequence<byte> payload, out ReadOnlySequence<byte> block)
    {
        var start = _reader.Position;
        headers = default;
        payload = default;
        block = default;
        if (!Bytes16("key", out key) || !Headers("headers", out headers) || !Bytes32("payload", out payload))
        {
            return false;
        }

        block = _reader.Sequence.Slice(start, _reader.Position);
        return true;
    }

    public bool End() => _reader.Remaining == 0 || Fail(null, Reasons.TrailingBytes);
}
