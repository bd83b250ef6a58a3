using System.Buffers;
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
            FrameWriter.WriteError(_control, requestId, code, reason, flags, subscriptionId, maxReasonBytes: ReasonRoom);
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

    /// <summary>
    /// The UTF-8 bytes an ERROR's reason may take so the frame fits the client's maxInboundFrameSize and a <c>str16</c>:
    /// <see cref="FrameWriter.WriteError(System.Buffers.IBufferWriter{byte}, ulong, ErrorCode, ReadOnlySpan{char}, ErrorFlags, uint, int)"/>
    /// cuts a longer one between characters and ends it with "…".
    /// </summary>
    private int ReasonRoom => Math.Min(ProtocolConstants.MaxShortBytesLength, _peerMaxFrame - ProtocolConstants.HeaderSize - 10);

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
