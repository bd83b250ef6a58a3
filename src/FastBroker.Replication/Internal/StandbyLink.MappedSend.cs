using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using FastBroker.Journal;
using FastBroker.Net;

namespace FastBroker.Replication.Internal;

/// <summary>The sender thread's sends of runs straight from the journal's mapping, bounded in how long they hold it.</summary>
internal sealed partial class StandbyLink
{
    /// <summary>
    /// Sends <paramref name="f"/> and then <paramref name="records"/>, a run straight from <paramref name="reader"/>'s
    /// mapping, without blocking while the socket takes them (<see cref="SocketSendNow"/>) for at most
    /// <see cref="s_mappedSendHold"/>; what it has not taken by then is copied into a pooled buffer, the reader parked
    /// and the copy sent blocking. A standby that stops reading (the socket buffers full) so keeps the mapping for at
    /// most that long: a segment retention deletes under a blocked send lets go of its disk blocks in the retention pass
    /// (or at the park), not when the standby reads again. Under the send lock; <paramref name="f"/> is emptied.
    /// </summary>
    private void SendMapped(FrameBuffer f, ReadOnlySpan<byte> records, JournalReader reader)
    {
        var head = f.Written;
        byte[]? copy = null;
        try
        {
            if (SocketSendNow.Supported)
            {
                var deadline = Stopwatch.GetTimestamp() + (long)(s_mappedSendHold.TotalSeconds * Stopwatch.Frequency);
                var polled = false;
                while (true)
                {
                    var taken = 0;
                    if (!head.IsEmpty)
                    {
                        taken = SocketSendNow.TrySend(_socket, head);
                        head = head[taken..];
                    }

                    if (head.IsEmpty)
                    {
                        var n = SocketSendNow.TrySend(_socket, records);
                        records = records[n..];
                        taken += n;
                        if (records.IsEmpty)
                        {
                            return;
                        }
                    }

                    if (taken > 0)
                    {
                        polled = false;
                        continue;
                    }

                    // Full: wait for room, within the bound. Room and nothing taken is a failed socket: the blocking
                    // send below throws its error.
                    var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                    if (polled || left <= TimeSpan.Zero || !_socket.Poll((int)Math.Max(1, left.TotalMicroseconds), SelectMode.SelectWrite))
                    {
                        break;
                    }

                    polled = true;
                }
            }

            copy = ArrayPool<byte>.Shared.Rent(records.Length);
            records.CopyTo(copy);
            var length = records.Length;
            reader.Park(); // the mapping is no longer used: the copy is sent
            Wire.SendAll(_socket, head);
            Wire.SendAll(_socket, copy.AsSpan(0, length));
        }
        finally
        {
            f.Clear();
            if (copy is not null)
            {
                ArrayPool<byte>.Shared.Return(copy);
            }
        }
    }
}
