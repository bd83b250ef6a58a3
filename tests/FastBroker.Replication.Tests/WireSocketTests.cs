using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastBroker.Net;
using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// The replication link's socket helpers: the standby's connect leaves a truly blocking descriptor (its receive
/// thread is woken by the kernel, not through the runtime's epoll thread), and the journaler's send never blocks.
/// </summary>
public sealed class WireSocketTests
{
    private const int ONonBlock = 0x800; // O_NONBLOCK (octal 04000)

    [Fact]
    public async Task Connect_leaves_the_descriptor_blocking()
    {
        var (socket, accepted) = await ConnectedPairAsync();
        using var s = socket;
        using var a = accepted;
        Assert.True(socket.Connected);
        Assert.Equal(0, DescriptorFlags(socket) & ONonBlock);
    }

    [Fact]
    public async Task Connect_times_out_against_a_listener_that_takes_no_more_connections()
    {
        // Backlog 0 and nobody accepting: the first connection fills the queue, later SYNs are dropped.
        using var listener = Listen(0);
        var filled = new List<Socket>();
        try
        {
            var timedOut = false;
            for (var i = 0; i < 8 && !timedOut; i++)
            {
                var attempt = Task.Run(() => Wire.Connect(listener.LocalEndPoint!, TimeSpan.FromMilliseconds(300)));
                try
                {
                    filled.Add(await attempt.WaitAsync(TimeSpan.FromSeconds(60)));
                }
                catch (SocketException ex)
                {
                    Assert.Equal(SocketError.TimedOut, ex.SocketErrorCode);
                    timedOut = true;
                }
            }

            Assert.True(timedOut, "every connect succeeded: the backlog never filled");
        }
        finally
        {
            filled.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task TrySendNow_stops_at_a_full_buffer_without_blocking_and_what_it_sent_arrives_in_order()
    {
        var (sender, receiver) = await ConnectedPairAsync();
        using var s = sender;
        using var r0 = receiver;

        // The receiver reads nothing yet: the kernel's buffers fill and a send comes back short, on this thread.
        var chunk = new byte[64 << 10];
        var sent = await Task.Run(() =>
        {
            long total = 0;
            for (var i = 0; i < 100_000; i++)
            {
                for (var k = 0; k < chunk.Length; k++)
                {
                    chunk[k] = (byte)(total + k);
                }

                var n = SocketSendNow.TrySend(sender, chunk);
                total += n;
                if (n < chunk.Length)
                {
                    return total;
                }
            }

            return -1;
        }).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(sent > 0, "the socket buffers never filled");

        // Still full: a send takes nothing and does not wait. The kernel may free a little room after the short send
        // (the loopback peer's acks are processed in softirq context, late on a loaded machine: a CI run saw the next
        // 1-byte send taken), so one byte at a time, continuing the stream's pattern, until one is refused; each call
        // on this thread, so one that blocked would hang the run past the deadline.
        var extra = await Task.Run(() =>
        {
            for (var i = 0; i < 1_000_000; i++)
            {
                if (SocketSendNow.TrySend(sender, [(byte)(sent + i)]) == 0)
                {
                    return i;
                }
            }

            return -1;
        }).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(extra >= 0, "a full socket kept taking bytes");
        sent += extra;

        // Exactly the bytes it reported arrive, in order.
        sender.Shutdown(SocketShutdown.Send);
        var buffer = new byte[64 << 10];
        long received = 0;
        int r;
        while ((r = receiver.Receive(buffer)) > 0)
        {
            for (var k = 0; k < r; k++)
            {
                Assert.True((byte)(received + k) == buffer[k], $"byte {received + k} out of order");
            }

            received += r;
        }

        Assert.Equal(sent, received);
    }

    /// <summary>
    /// The standby keeps its ACK frame buffers across links. A frame whose send failed (its link broke) was left in the
    /// buffer, and the next frame was appended to it: the old link's ACK, built with that link's topic ids and
    /// positions, then went out on the new link in front of the new one.
    /// </summary>
    [Fact]
    public async Task A_frame_whose_send_failed_is_not_sent_again_on_the_next_socket()
    {
        var (oldLink, oldPeer) = await ConnectedPairAsync();
        oldPeer.Dispose();
        oldLink.Dispose();
        var f = new FrameBuffer(64);
        f.Begin(FrameKind.Ack).U32(1).U32(0).I64(100).I64(100).End();
        Assert.Throws<ObjectDisposedException>(() => f.SendTo(oldLink));

        var (newLink, newPeer) = await ConnectedPairAsync();
        using var s = newLink;
        using var r = newPeer;
        f.Begin(FrameKind.Ack).U32(0).End();
        f.SendTo(newLink);
        newLink.Shutdown(SocketShutdown.Send);
        var input = new FrameInput(newPeer, 4096);
        Assert.True(input.Read(out var kind, out var body));
        Assert.Equal(FrameKind.Ack, kind);
        Assert.Equal(0u, new FrameReader(body).U32()); // the new frame, not the one built for the closed link
        Assert.False(input.Read(out _, out _), "a second frame arrived");
    }

    /// <summary>
    /// A frame that straddles the end of the receive buffer but fits the buffer is moved to its front, not given a buffer
    /// twice the size: before, every such straddle doubled the buffer, so a long-running link's grew without bound
    /// although no frame was larger than the first buffer (here 64 bytes became 128 at the first round).
    /// </summary>
    [Fact]
    public async Task A_frame_straddling_the_buffers_end_is_moved_to_the_front_and_the_buffer_does_not_grow()
    {
        var (sender, receiver) = await ConnectedPairAsync();
        using var s = sender;
        using var r = receiver;
        var input = new FrameInput(receiver, 64);
        var frame = new byte[40]; // length 36 (kind + 35 bytes of body)
        for (var round = 0; round < 50; round++)
        {
            Frame(frame, round);
            sender.Send(frame);
            sender.Send(Frame(frame, round + 1000).AsSpan(0, 10)); // and the first 10 bytes of the next frame
            Eventually.True(() => receiver.Available >= 50, "the 50 bytes arrived");
            ExpectFrame(input, round);
            sender.Send(frame.AsSpan(10)); // the rest of the second frame: it straddled the buffer's end at byte 40
            ExpectFrame(input, round + 1000);
            Assert.True(64 == input.Capacity, $"round {round}: the buffer grew to {input.Capacity} bytes for frames of {frame.Length}");
        }

        static byte[] Frame(byte[] frame, int mark)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)frame.Length - 4);
            frame[4] = (byte)FrameKind.Ack;
            BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(5), mark);
            return frame;
        }

        static void ExpectFrame(FrameInput input, int mark)
        {
            Assert.True(input.Read(out var kind, out var body));
            Assert.Equal((FrameKind.Ack, 35, mark), (kind, body.Length, BinaryPrimitives.ReadInt32LittleEndian(body)));
        }
    }

    /// <summary>A socket from <see cref="Wire.Connect"/> and its accepted peer.</summary>
    private static async Task<(Socket Connected, Socket Accepted)> ConnectedPairAsync()
    {
        using var listener = Listen(16);
        var accepting = listener.AcceptAsync();
        var connected = Wire.Connect(listener.LocalEndPoint!, TimeSpan.FromSeconds(30));
        return (connected, await accepting.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private static Socket Listen(int backlog)
    {
        var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(backlog);
        return listener;
    }

    private static int DescriptorFlags(Socket socket)
    {
        var fd = socket.SafeHandle.DangerousGetHandle().ToInt32();
        var line = File.ReadLines($"/proc/self/fdinfo/{fd}").First(l => l.StartsWith("flags:", StringComparison.Ordinal));
        return Convert.ToInt32(line["flags:".Length..].Trim(), 8);
    }
}
