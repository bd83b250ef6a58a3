using System.Buffers;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>Replies the reader queues for the writer: OK, ERROR, PONG, WELCOME, ADMIN_RESULT.</summary>
internal sealed partial class Session
{
    // The reader encodes replies here under the lock; the writer copies them into the pipe in one go. The buffer is
    // reused, so steady-state replies allocate nothing.
    private readonly object _controlGate = new();
    private readonly ArrayBufferWriter<byte> _control = new(1024);
    private int _controlFrames;

    private void SendOk(ulong requestId, ulong value)
    {
        lock (_controlGate)
        {
            FrameWriter.WriteOk(_control, requestId, value);
            _controlFrames++;
        }

        _signal.Set();
    }

    private void SendOk(ulong requestId, ulong value, ulong epoch)
    {
        lock (_controlGate)
        {
            FrameWriter.WriteOk(_control, requestId, value, epoch);
            _controlFrames++;
        }

        _signal.Set();
    }

    /// <summary>An ERROR that does not close the connection.</summary>
    private void SendError(ulong requestId, ErrorCode code, string reason, ErrorFlags flags = ErrorFlags.None, uint subscriptionId = 0)
    {
        lock (_controlGate)
        {
            FrameWriter.WriteError(_control, requestId, code, FitReason(reason), flags, subscriptionId);
            _controlFrames++;
        }

        _signal.Set();
    }

    private void SendAdminResult(ulong requestId, AdminQuery query, ReadOnlySpan<byte> json)
    {
        if (ProtocolConstants.HeaderSize + 8L + json.Length > _peerMaxFrame)
        {
            SendError(requestId, ErrorCode.MessageTooLarge, $"ADMIN: the result has {json.Length} bytes, more than this client accepts (maxInboundFrameSize {_peerMaxFrame})");
            return;
        }

        lock (_controlGate)
        {
            FrameWriter.WriteAdminResult(_control, requestId, query, json);
            _controlFrames++;
        }

        _signal.Set();
    }

    /// <summary>Shortens a reason so the ERROR frame fits the client's limit and a <c>str16</c>.</summary>
    private ReadOnlySpan<char> FitReason(string reason)
    {
        var max = Math.Min(ProtocolConstants.MaxShortBytesLength, _peerMaxFrame - ProtocolConstants.HeaderSize - 10);
        if (Encoding.UTF8.GetMaxByteCount(reason.Length) <= max || Encoding.UTF8.GetByteCount(reason) <= max)
        {
            return reason;
        }

        // Worst case 3 bytes per UTF-16 unit; cut at a char boundary that is not inside a surrogate pair.
        var n = Math.Max(0, (max / 3) - 1);
        if (n > 0 && char.IsHighSurrogate(reason[n - 1]))
        {
            n--;
        }

        return reason.AsSpan(0, n);
    }

    /// <summary>Writer thread: copies queued replies into the pipe.</summary>
    private void DrainControl(ref long bytes, ref long frames)
    {
        lock (_controlGate)
        {
            var written = _control.WrittenCount;
            if (written == 0)
            {
                return;
            }

            _control.WrittenSpan.CopyTo(_output!.GetSpan(written));
            _output.Advance(written);
            bytes += written;
            frames += _controlFrames;
            _controlFrames = 0;
            _control.ResetWrittenCount();
        }
    }
}
