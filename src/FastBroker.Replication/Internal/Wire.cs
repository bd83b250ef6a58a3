using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using FastBroker.Net;

namespace FastBroker.Replication.Internal;

/// <summary>Frame types of the replication link (docs/replication.md, "The replication link").</summary>
internal enum FrameKind : byte
{
    /// <summary>Standby → primary: epoch, node id and per-topic (first, next) offsets.</summary>
    Hello = 1,

    /// <summary>Standby → primary: per-topic received and durable positions.</summary>
    Ack = 2,

    /// <summary>Any → any: "what are you?" (answered with <see cref="Status"/>).</summary>
    Probe = 3,

    /// <summary>Standby → primary: every position update up to this version is applied.</summary>
    StateAck = 4,

    /// <summary>
    /// Standby → primary: a state file's relative path; the standby's copy was damaged (it made a new one), or its
    /// STATE_DIGESTS left the copy out and the attach did not send the file, so the primary sends the file whole
    /// (<see cref="State"/>) even if it sent these bytes before on this link, or <see cref="StateGone"/> when it has none.
    /// </summary>
    StateWanted = 5,

    /// <summary>
    /// Standby → primary, its first frame after the <see cref="Welcome"/>: per state file it holds, its path, length,
    /// CRC32C and a second check (<see cref="Internal.StateDigests"/>); the primary sends whole at the attach only the files
    /// whose copy differs or is missing.
    /// </summary>
    StateDigests = 6,

    /// <summary>Primary → standby: epoch, epoch history and what to cut from each topic before streaming.</summary>
    Welcome = 10,

    /// <summary>Refusal with the refuser's role and epoch (e.g. a standby told to follow a stale primary).</summary>
    Refuse = 11,

    /// <summary>Primary → standby: a topic (id for this link, name, settings, first offset to keep).</summary>
    Topic = 12,

    /// <summary>Primary → standby: a run of whole journal records, byte-identical to the primary's.</summary>
    Records = 13,

    /// <summary>Primary → standby: a broker state file (consumer positions, group acks), whole.</summary>
    State = 14,

    /// <summary>
    /// Primary → standby: liveness, the current epoch, and each announced topic's head (topic id, next offset), from
    /// which the standby knows how many records it lacks.
    /// </summary>
    Heartbeat = 15,

    /// <summary>Answer to <see cref="Probe"/>: role, epoch, node id.</summary>
    Status = 16,

    /// <summary>Primary → standby: committed consumer positions (version, then subscription, topic, next offset each).</summary>
    Positions = 17,

    /// <summary>
    /// Primary → standby: a confirmation waits for this topic's durable position (topic id): flush what was streamed.
    /// Without it the standby flushes every <c>StandbyReplica.BackgroundFlush</c>.
    /// </summary>
    Flush = 18,

    /// <summary>
    /// Primary → standby: the oldest offset the primary still keeps in a topic (topic id, offset), sent with the
    /// heartbeat when it changes. The standby's retention never deletes anything from there on: what the primary
    /// keeps (such as a work-queue group's unacked messages) survives a failover.
    /// </summary>
    Retained = 19,

    /// <summary>
    /// Primary → standby: a state file's relative path; the primary no longer has that file (a durable subscription's
    /// position file or a group's state removed, found gone by its check of the state files, or a copy the standby
    /// reported in <see cref="StateDigests"/> that the primary lacks at the attach). The standby removes its copy.
    /// </summary>
    StateGone = 20,

    /// <summary>
    /// Primary → standby: the primary cannot send a topic's records from an offset on (topic id, offset, reason): its
    /// journal's record there is damaged (fails its check). The link stays up; nothing more of that topic is sent on it.
    /// </summary>
    Damaged = 21,
}

/// <summary>What a <c>Welcome</c> tells the standby to do with one of its topics.</summary>
internal enum TopicAction : byte
{
    /// <summary>Keep everything; stream from its next offset.</summary>
    Keep = 0,

    /// <summary>Drop records at and after the offset (the primary never had them in this history).</summary>
    Truncate = 1,

    /// <summary>Delete the copy (its journal and groups' state) and create it anew at the offset (the primary no longer has what lies between).</summary>
    Reset = 2,

    /// <summary>Drop the topic (it does not exist in the primary's history).</summary>
    Delete = 3,
}

/// <summary>
/// Little-endian frame writer into a reusable buffer: <c>u32 length | u8 kind | body</c> (length counts kind and body).
/// </summary>
internal sealed class FrameBuffer(int capacity)
{
    private byte[] _buffer = new byte[capacity];
    private int _length;
    private int _frameStart;

    public int Length => _length;

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    public void Clear() => _length = 0;

    public FrameBuffer Begin(FrameKind kind)
    {
        Ensure(5);
        _frameStart = _length;
        _length += 4;
        _buffer[_length++] = (byte)kind;
        return this;
    }

    /// <summary>Finishes the frame; <paramref name="trailing"/> bytes will follow it outside this buffer (sent separately).</summary>
    public void End(int trailing = 0) =>
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_frameStart), (uint)(_length - _frameStart - 4 + trailing));

    public FrameBuffer U8(byte v)
    {
        Ensure(1);
        _buffer[_length++] = v;
        return this;
    }

    public FrameBuffer U16(ushort v)
    {
        Ensure(2);
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer.AsSpan(_length), v);
        _length += 2;
        return this;
    }

    public FrameBuffer U32(uint v)
    {
        Ensure(4);
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(_length), v);
        _length += 4;
        return this;
    }

    public FrameBuffer I64(long v)
    {
        Ensure(8);
        BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(_length), v);
        _length += 8;
        return this;
    }

    public FrameBuffer Str(string s)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        if (n > ushort.MaxValue)
        {
            throw new ArgumentException("string too long for the replication link", nameof(s));
        }

        U16((ushort)n);
        Ensure(n);
        _length += Encoding.UTF8.GetBytes(s, _buffer.AsSpan(_length));
        return this;
    }

    public FrameBuffer Bytes(ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
        return this;
    }

    /// <summary>
    /// Sends what was written and empties the buffer, also when the send fails: the frames were built for this socket's
    /// link (its topic ids, its positions), and the standby reuses its ACK buffers across links, so what one link could
    /// not take must not go out in front of the next frame on the next link.
    /// </summary>
    public void SendTo(Socket socket)
    {
        try
        {
            Wire.SendAll(socket, Written);
        }
        finally
        {
            _length = 0;
        }
    }

    private void Ensure(int n)
    {
        if (_length + n > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + n));
        }
    }
}

/// <summary>A cursor over a received frame body; throws <see cref="InvalidDataException"/> on a short or bad body.</summary>
internal ref struct FrameReader(ReadOnlySpan<byte> body)
{
    private readonly ReadOnlySpan<byte> _body = body;
    private int _at;

    public readonly int Remaining => _body.Length - _at;

    public byte U8() => Take(1)[0];

    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public string Str() => Encoding.UTF8.GetString(Take(U16()));

    public ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || _at + n > _body.Length)
        {
            throw new InvalidDataException($"replication frame too short: wanted {n} bytes at {_at} of {_body.Length}");
        }

        var s = _body.Slice(_at, n);
        _at += n;
        return s;
    }
}

/// <summary>Blocking socket helpers for the link's dedicated threads.</summary>
internal static class Wire
{
    public const uint Magic = 0x50524246; // "FBRP"
    public const ushort Version = 10; // 4: RETAINED; 5: the standby's epoch history in HELLO; 6: topic heads in HEARTBEAT; 7: STATE_WANTED; 8: STATE_DIGESTS; 9: STATE_GONE; 10: DAMAGED
    public const int MaxFrame = 64 << 20;

    public static void SendAll(Socket socket, ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[socket.Send(bytes)..];
        }
    }

    /// <summary>
    /// A synchronous connect (<see cref="BlockingConnect"/>), so that the descriptor stays blocking at the OS level and
    /// the standby's blocking <c>Receive</c> is woken by the kernel alone. The timeout, or
    /// <paramref name="cancellationToken"/>, closes the socket under the pending connect: a timeout throws
    /// <see cref="SocketException"/> (<see cref="SocketError.TimedOut"/>), the token <see cref="OperationCanceledException"/>.
    /// </summary>
    public static Socket Connect(System.Net.EndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            BlockingConnect.Connect(socket, endPoint, deadline.Token);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// TCP keepalive after one second of silence, probed every second, given up after three unanswered probes: a peer
    /// whose host died (power, panic) never sends a FIN, and a socket nobody writes to would otherwise stay open for
    /// the kernel's default of two hours.
    /// </summary>
    public static void KeepAlive(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 1);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 1);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
    }
}

/// <summary>
/// Reads whole frames from a socket into a growing buffer (one copy, from the kernel). <see cref="TryNext"/> hands out
/// frames already buffered; <see cref="Fill"/> blocks for more.
/// </summary>
internal sealed class FrameInput(Socket socket, int capacity)
{
    private byte[] _buffer = new byte[capacity];
    private int _start;
    private int _end;

    /// <summary>The buffer's size now (tests: it grows only for a frame larger than it).</summary>
    internal int Capacity => _buffer.Length;

    /// <summary>True when no more bytes are buffered nor waiting in the socket (time to acknowledge).</summary>
    public bool Drained => _start == _end && socket.Available == 0;

    /// <summary>The next complete frame in the buffer, if any.</summary>
    public bool TryNext(out FrameKind kind, out ReadOnlySpan<byte> body)
    {
        kind = default;
        body = default;
        if (_end - _start < 5)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_start));
        if (length is 0 or > Wire.MaxFrame)
        {
            throw new InvalidDataException($"replication frame of {length} bytes (limit {Wire.MaxFrame})");
        }

        if (_end - _start < 4 + length)
        {
            return false;
        }

        kind = (FrameKind)_buffer[_start + 4];
        body = _buffer.AsSpan(_start + 5, (int)length - 1);
        _start += 4 + (int)length;
        return true;
    }

    /// <summary>Blocks until more bytes arrive; false when the peer closed the connection.</summary>
    public bool Fill()
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_start > 0 && _end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end - _start >= 4)
        {
            var need = 4 + (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_start)), Wire.MaxFrame);
            if (need > _buffer.Length - _start)
            {
                // The frame does not fit after its start: moved to the front when it fits the buffer (grown only for a
                // frame larger than the buffer, so the buffer stays at most twice the largest frame however long the
                // link runs: growing whenever a frame straddled the end kept doubling it).
                var target = need <= _buffer.Length ? _buffer : new byte[Math.Max(need, _buffer.Length * 2)];
                Buffer.BlockCopy(_buffer, _start, target, 0, _end - _start);
                _end -= _start;
                _start = 0;
                _buffer = target;
            }
        }

        var n = socket.Receive(_buffer.AsSpan(_end));
        _end += n;
        return n > 0;
    }

    /// <summary>Reads one whole frame (blocking); false when the connection closed first.</summary>
    public bool Read(out FrameKind kind, out ReadOnlySpan<byte> body)
    {
        while (!TryNext(out kind, out body))
        {
            if (!Fill())
            {
                return false;
            }
        }

        return true;
    }
}
