using System.Buffers.Binary;
using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>
/// Under a TLS connection's <see cref="System.Net.Security.SslStream"/>: passes everything through and keeps a copy of
/// the first bytes read, so a failed handshake can tell a server that answered with a plain FastBroker frame (it does
/// not speak TLS on that port) from other TLS failures, which say only "a corrupted frame was received".
/// </summary>
internal sealed class FirstBytesStream(Stream inner) : Stream
{
    private readonly byte[] _first = new byte[16];
    private int _kept;

    /// <summary>True when the first bytes read are a FastBroker ERROR frame's header (what a plain server answers a TLS ClientHello with).</summary>
    public bool SawPlainErrorFrame =>
        _kept == _first.Length
        && BinaryPrimitives.ReadUInt32LittleEndian(_first) is >= 12 and <= 64 * 1024
        && _first[4] == (byte)FrameType.Error;

    public override bool CanRead => inner.CanRead;

    public override bool CanWrite => inner.CanWrite;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(Span<byte> buffer) => Keep(buffer, inner.Read(buffer));

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Keep(buffer.Span, read);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return inner.DisposeAsync();
    }

    private int Keep(ReadOnlySpan<byte> buffer, int read)
    {
        if (_kept < _first.Length && read > 0)
        {
            var n = Math.Min(read, _first.Length - _kept);
            buffer[..n].CopyTo(_first.AsSpan(_kept));
            _kept += n;
        }

        return read;
    }
}
