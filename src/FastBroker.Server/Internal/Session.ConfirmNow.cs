using System.Buffers;
using FastBroker.Net;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>
/// Confirmations sent by the journaler thread itself. At a modest rate the writer is asleep when a publish is
/// journaled; waking it just to send one CONFIRM costs a thread wake-up, tens of µs on a busy small machine. So at the
/// end of each journaler batch (<see cref="OnConfirmBatchEnd"/>) the journaler takes the send role if the writer does
/// not hold it, writes the queued confirmations into a small buffer and sends them with one non-blocking
/// <c>send</c>. It never waits: if the writer holds the role, or the socket takes only part of the bytes, the writer
/// is signalled and sends the rest (<see cref="WriteUnsent"/>) before anything else, so the byte stream stays whole
/// and in order. A failover primary's ack reader does the same for the confirmations a standby ACK releases; the
/// send role also keeps it and the journaler apart.
/// </summary>
/// <remarks>
/// The send role (<see cref="_sendOwner"/>) is held by the writer for a whole pass including its flush, so at most
/// one send is ever in flight on the socket. The writer keeps it for good once it ends.
/// </remarks>
internal sealed partial class Session : IPublishConfirmBatchSink
{
    // One send: about 170 ranges, and a batch's confirmations usually merge into one or a few.
    private const int SendNowBytes = 4096;

    // At most this much per batch end (16 sends); a bigger backlog goes to the writer so the journaler gets back to
    // journaling.
    private const int SendNowBudget = 64 * 1024;

    private int _sendOwner; // 0: free; 1: held by the writer, the journaler or the ack reader
    private bool _sendNow;
    private ArrayBufferWriter<byte>? _nowBuffer;
    private byte[]? _unsent;
    private int _unsentLength;

    /// <summary>Confirmations on the journaler thread (or the ack reader), held until <see cref="OnConfirmBatchEnd"/>.</summary>
    public void OnPublishConfirmedInBatch(ulong token, long offset, bool duplicate)
    {
        if (!_sendNow)
        {
            OnPublishConfirmed(token, offset, duplicate);
            return;
        }

        EnqueueConfirm(new ConfirmEntry(token, ErrorCode.None, (ulong)offset, duplicate));
        Interlocked.Decrement(ref _pendingConfirms);
    }

    /// <summary>End of the journaler's batch (or of an ACK): send this connection's confirmations now, or wake the writer.</summary>
    public void OnConfirmBatchEnd()
    {
        if (_sendNow && !TrySendConfirmsNow())
        {
            _signal.Set();
        }
    }

    /// <summary>Plain TCP on Linux with the option on: the journaler may send (called before the writer starts).</summary>
    private void EnableSendNow()
    {
        if (_options.ConfirmsFromJournaler && _server.Certificate is null && SocketSendNow.Supported)
        {
            _nowBuffer = new ArrayBufferWriter<byte>(SendNowBytes);
            _unsent = new byte[SendNowBytes];
            _sendNow = true;
        }
    }

    /// <summary>True when every queued confirmation left; false when the writer must do the rest.</summary>
    private bool TrySendConfirmsNow()
    {
        if (Interlocked.CompareExchange(ref _sendOwner, 1, 0) != 0)
        {
            return false; // the writer is awake: its pass takes the queue
        }

        try
        {
            if (_unsentLength > 0)
            {
                return false; // the rest of a short send goes first, from the writer
            }

            var buffer = _nowBuffer!;
            for (var budget = SendNowBudget; budget > 0; budget -= SendNowBytes)
            {
                buffer.ResetWrittenCount();
                long bytes = 0;
                long frames = 0;
                var drained = DrainConfirms(buffer, SendNowBytes, ref bytes, ref frames);
                if (bytes == 0)
                {
                    return drained;
                }

                var data = buffer.WrittenSpan;
                var sent = SocketSendNow.TrySend(_socket, data);
                _server.CountOut(frames, bytes);
                _server.CountJournalerConfirm(frames, complete: sent == data.Length);
                if (sent < data.Length)
                {
                    data[sent..].CopyTo(_unsent);
                    _unsentLength = data.Length - sent;
                    return false;
                }

                _writerProgress.Set();
                if (drained)
                {
                    return true;
                }
            }

            return false; // a big backlog: the writer takes the rest
        }
        finally
        {
            Volatile.Write(ref _sendOwner, 0);
        }
    }

    /// <summary>
    /// Writer: the part of the journaler's last send the socket did not take, ahead of everything else (already
    /// counted as sent). True when there was some: the writer must flush.
    /// </summary>
    private bool WriteUnsent()
    {
        if (_unsentLength == 0)
        {
            return false;
        }

        var n = _unsentLength;
        _unsent.AsSpan(0, n).CopyTo(_output!.GetSpan(n));
        _output.Advance(n);
        _unsentLength = 0;
        return true;
    }

    private void AcquireSend()
    {
        // The journaler holds the role for one non-blocking send at most.
        var spin = default(SpinWait);
        while (Interlocked.CompareExchange(ref _sendOwner, 1, 0) != 0)
        {
            spin.SpinOnce();
        }
    }

    private void ReleaseSend() => Volatile.Write(ref _sendOwner, 0);
}
