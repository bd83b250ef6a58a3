using System.Buffers;
using System.Net;
using System.Net.Sockets;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

[Collection(SerialCollection.Name)]
public class AllocationTests
{
    private const int Messages = 1_000_000;
    private const int PerBlock = 500;

    [Fact]
    public async Task Publish_confirm_and_deliver_over_tcp_allocate_nothing_per_message_in_steady_state()
    {
        await using var f = await ServerFixture.StartAsync(broker: b => b with
        {
            // One segment holds both passes: rolling segments allocates per segment, not per message.
            DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 256L << 20, MaxMessageBytes = 1024 },
        });
        f.Broker.CreateTopic("hot", f.Broker.Options.DefaultTopicOptions);
        using var pub = BlockingClient.Connect(f.EndPoint);
        using var sub = BlockingClient.Connect(f.EndPoint);
        sub.Send(w => FrameWriter.WriteSubscribe(w, 2, 1, "hot"u8, int.MaxValue, Protocol.StartKind.Latest));
        sub.ReadOne(FrameType.Ok);

        // Pre-built frames: 500 PUBLISHes (request ids 1…500, reused once answered) with a key, a header and 100 bytes.
        var block = new ArrayBufferWriter<byte>();
        for (var i = 1; i <= PerBlock; i++)
        {
            FrameWriter.WritePublish(block, (ulong)i, "hot"u8, new byte[100], "key"u8, Headers.Of(("trace", "abcdef")));
        }

        var frames = block.WrittenMemory.ToArray();
        Run(pub, sub, frames, 50_000);

        var before = GC.GetTotalAllocatedBytes(precise: true);
        Run(pub, sub, frames, Messages);
        var after = GC.GetTotalAllocatedBytes(precise: true);

        // Every thread of the process: the server's reader and writer tasks, the broker's pipeline, these client
        // threads, timers, pooled buffers topped up, back-pressure waits (a few hundred KB whatever the count).
        // Less than a byte per message: the smallest object allocated per message would be ≥ 24 MB here.
        Assert.True(after - before < Messages, $"process allocated {after - before} B for {Messages} published, confirmed and delivered messages");
    }

    private static void Run(BlockingClient pub, BlockingClient sub, byte[] frames, int count)
    {
        long confirmed = 0;
        long delivered = 0;
        var sender = new Thread(() =>
        {
            for (var sent = 0; sent < count; sent += PerBlock)
            {
                // At most 10 blocks in flight: the server's back-pressure is not what this test measures.
                while (sent - Volatile.Read(ref confirmed) > 10 * PerBlock)
                {
                    Thread.Yield();
                }

                pub.SendRaw(frames);
            }
        })
        { Name = "alloc-sender" };
        var confirms = new Thread(() => Volatile.Write(ref confirmed, pub.Count(count, isConfirm: true, progress: n => Volatile.Write(ref confirmed, n)))) { Name = "alloc-confirms" };
        var deliveries = new Thread(() => Volatile.Write(ref delivered, sub.Count(count, isConfirm: false, progress: null))) { Name = "alloc-deliveries" };
        sender.Start();
        confirms.Start();
        deliveries.Start();
        Eventually.Joined(sender, TimeSpan.FromMinutes(2));
        Eventually.Joined(confirms, TimeSpan.FromMinutes(2));
        Eventually.Joined(deliveries, TimeSpan.FromMinutes(2));
        Assert.Equal(count, Volatile.Read(ref confirmed));
        Assert.Equal(count, Volatile.Read(ref delivered));
    }

    /// <summary>A synchronous, allocation-free client: blocking socket calls, one receive buffer, a counting struct handler.</summary>
    private sealed class BlockingClient : IDisposable
    {
        private readonly Socket _socket;
        private readonly byte[] _buffer = new byte[1 << 20];
        private int _start;
        private int _end;

        private BlockingClient(Socket socket) => _socket = socket;

        public static BlockingClient Connect(IPEndPoint endPoint)
        {
            var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 120_000 };
            socket.Connect(endPoint);
            var c = new BlockingClient(socket);
            c.Send(w => FrameWriter.WriteHello(w, 1, "alloc"u8, "1"u8, ProtocolFeatures.Batching));
            c.ReadOne(FrameType.Welcome);
            return c;
        }

        public void Send(Action<ArrayBufferWriter<byte>> write)
        {
            var w = new ArrayBufferWriter<byte>();
            write(w);
            SendRaw(w.WrittenSpan);
        }

        public void SendRaw(ReadOnlySpan<byte> bytes)
        {
            while (!bytes.IsEmpty)
            {
                bytes = bytes[_socket.Send(bytes)..];
            }
        }

        public void ReadOne(FrameType expected)
        {
            var handler = new Counter();
            while (!Parse(ref handler))
            {
                Receive();
            }

            Assert.Equal(expected, handler.Last);
        }

        /// <summary>Reads until <paramref name="count"/> confirmations (or deliveries) have arrived; returns the total.</summary>
        public long Count(int count, bool isConfirm, Action<long>? progress)
        {
            var handler = new Counter();
            while ((isConfirm ? handler.Confirmed : handler.Delivered) < count)
            {
                while (Parse(ref handler))
                {
                    Assert.True(handler.Failed == 0, "a publish failed");
                }

                progress?.Invoke(handler.Confirmed);
                if ((isConfirm ? handler.Confirmed : handler.Delivered) < count)
                {
                    Receive();
                }
            }

            return isConfirm ? handler.Confirmed : handler.Delivered;
        }

        public void Dispose() => _socket.Dispose();

        private bool Parse(ref Counter handler)
        {
            var sequence = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
            var length = sequence.Length;
            if (!FrameParser.TryParseServerFrame(ref sequence, ref handler, _buffer.Length, out var error))
            {
                Assert.False(error.IsError);
                return false;
            }

            _start += (int)(length - sequence.Length);
            return true;
        }

        private void Receive()
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            var n = _socket.Receive(_buffer, _end, _buffer.Length - _end, SocketFlags.None);
            Assert.True(n > 0, "the server closed the connection");
            _end += n;
        }
    }

    private struct Counter : IServerFrameHandler
    {
        public long Confirmed;
        public long Failed;
        public long Delivered;
        public FrameType Last;

        public void OnWelcome(in FrameHeader header, in WelcomeFrame frame) => Last = header.Type;

        public void OnPing(in FrameHeader header) => Last = header.Type;

        public void OnPong(in FrameHeader header) => Last = header.Type;

        public void OnOk(in FrameHeader header, ulong value, ulong epoch) => Last = header.Type;

        public void OnError(in FrameHeader header, in ErrorFrame frame)
        {
            Last = header.Type;
            Failed++;
        }

        public void OnConfirm(in FrameHeader header, in ConfirmFrame frame)
        {
            Last = header.Type;
            foreach (var r in frame)
            {
                Confirmed += r.Count;
                if (r.Status != ErrorCode.None)
                {
                    Failed++;
                }
            }
        }

        public void OnDeliver(in FrameHeader header, in DeliverFrame frame)
        {
            Last = header.Type;
            Delivered++;
        }

        public void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame frame)
        {
            Last = header.Type;
            Delivered += frame.Count;
        }

        public void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset) => Last = header.Type;

        public void OnAdminResult(in FrameHeader header, in AdminResultFrame frame) => Last = header.Type;
    }
}
