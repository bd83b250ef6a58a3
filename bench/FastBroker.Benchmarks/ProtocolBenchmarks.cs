using System.Buffers;
using BenchmarkDotNet.Attributes;
using FastBroker.Protocol;

namespace FastBroker.Benchmarks;

/// <summary>
/// What a server's reader does per received PUBLISH_BATCH before it touches the broker: parse (validate) the frame, then
/// enumerate its messages, as <c>Session.OnPublishBatch</c> does; and the same for a client's receive thread per
/// DELIVER_BATCH. 64 messages of 100 bytes to one topic, as the e2e bench's client batches them;
/// <see cref="WithHeaders"/> adds two header entries per message; <see cref="Split"/> hands the frame over in 4 KiB
/// segments. Reported per message.
/// </summary>
[MemoryDiagnoser]
public class ProtocolBenchmarks
{
    private const int Messages = 64;
    private ReadOnlySequence<byte> _frame;
    private ReadOnlySequence<byte> _deliveries;

    [Params(false, true)]
    public bool WithHeaders { get; set; }

    /// <summary>The frame in 4 KiB segments, as a pipe hands over a batch larger than its segment (or one across a segment's end).</summary>
    [Params(false, true)]
    public bool Split { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var headerBytes = new byte[64];
        var headers = new HeaderBlockWriter(headerBytes);
        if (!headers.TryAdd("trace"u8, "0123456789abcdef"u8) || !headers.TryAdd("kind"u8, "order"u8))
        {
            throw new InvalidOperationException("the header block is full");
        }

        var headerBlock = headerBytes[..headers.BytesWritten];
        var output = new ArrayBufferWriter<byte>();
        var batch = new PublishBatchWriter(output, 64 * 1024, firstRequestId: 1);
        var payload = new byte[100];
        for (var i = 0; i < Messages; i++)
        {
            if (!batch.TryAdd("bench.orders"u8, payload, headers: WithHeaders ? headerBlock : default))
            {
                throw new InvalidOperationException("the batch is full");
            }
        }

        batch.Complete();
        _frame = Segments(output.WrittenMemory.ToArray());

        var delivered = new ArrayBufferWriter<byte>();
        var deliveries = new DeliverBatchWriter(delivered, 64 * 1024, subscriptionId: 1);
        for (var i = 0; i < Messages; i++)
        {
            if (!deliveries.TryAdd(1, (ulong)i, 1_700_000_000_000_000_000 + i, "bench.orders"u8, payload, headers: WithHeaders ? headerBlock : default))
            {
                throw new InvalidOperationException("the delivery batch is full");
            }
        }

        deliveries.Complete();
        _deliveries = Segments(delivered.WrittenMemory.ToArray());
    }

    [Benchmark(OperationsPerInvoke = Messages)]
    public long ParseAndEnumerate()
    {
        var buffer = _frame;
        var handler = new Enumerate();
        if (!FrameParser.TryParseClientFrame(ref buffer, ref handler, 1 << 20, out var error))
        {
            throw new InvalidOperationException($"the frame did not parse: {error.Reason}");
        }

        return handler.Bytes;
    }

    [Benchmark(OperationsPerInvoke = Messages)]
    public long ParseAndEnumerateDeliveries()
    {
        var buffer = _deliveries;
        var handler = new EnumerateDeliveries();
        if (!FrameParser.TryParseServerFrame(ref buffer, ref handler, 1 << 20, out var error))
        {
            throw new InvalidOperationException($"the frame did not parse: {error.Reason}");
        }

        return handler.Bytes;
    }

    private ReadOnlySequence<byte> Segments(byte[] frame)
    {
        if (!Split)
        {
            return new ReadOnlySequence<byte>(frame);
        }

        const int Size = 4096;
        var first = new Segment(frame.AsMemory(0, Math.Min(Size, frame.Length)), 0);
        var last = first;
        for (var at = Size; at < frame.Length; at += Size)
        {
            last = last.Append(frame.AsMemory(at, Math.Min(Size, frame.Length - at)));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    private struct EnumerateDeliveries : IServerFrameHandler
    {
        public long Bytes;

        public void OnDeliverBatch(in FrameHeader header, in DeliverBatchFrame frame)
        {
            foreach (var entry in frame)
            {
                Bytes += (long)entry.Offset + entry.Topic.Length + entry.Key.Length + entry.Headers.Count + entry.Payload.Length;
            }
        }

        public void OnWelcome(in FrameHeader header, in WelcomeFrame frame) => throw new NotSupportedException();

        public void OnPing(in FrameHeader header) => throw new NotSupportedException();

        public void OnPong(in FrameHeader header) => throw new NotSupportedException();

        public void OnOk(in FrameHeader header, ulong value, ulong epoch) => throw new NotSupportedException();

        public void OnError(in FrameHeader header, in ErrorFrame frame) => throw new NotSupportedException();

        public void OnConfirm(in FrameHeader header, in ConfirmFrame frame) => throw new NotSupportedException();

        public void OnDeliver(in FrameHeader header, in DeliverFrame frame) => throw new NotSupportedException();

        public void OnDropped(in FrameHeader header, uint subscriptionId, ulong droppedCount, ulong resumeOffset) => throw new NotSupportedException();

        public void OnAdminResult(in FrameHeader header, in AdminResultFrame frame) => throw new NotSupportedException();
    }

    private struct Enumerate : IClientFrameHandler
    {
        public long Bytes;

        public void OnPublishBatch(in FrameHeader header, in PublishBatchFrame frame)
        {
            foreach (var entry in frame)
            {
                Bytes += entry.Topic.Length + entry.Key.Length + entry.Headers.Count + entry.Payload.Length;
            }
        }

        public void OnHello(in FrameHeader header, in HelloFrame frame) => throw new NotSupportedException();

        public void OnPing(in FrameHeader header) => throw new NotSupportedException();

        public void OnPong(in FrameHeader header) => throw new NotSupportedException();

        public void OnPublish(in FrameHeader header, in PublishFrame frame) => throw new NotSupportedException();

        public void OnInitProducer(in FrameHeader header, ulong producerId, ulong? epoch) => throw new NotSupportedException();

        public void OnSubscribe(in FrameHeader header, in SubscribeFrame frame) => throw new NotSupportedException();

        public void OnUnsubscribe(in FrameHeader header, uint subscriptionId) => throw new NotSupportedException();

        public void OnCredit(in FrameHeader header, uint subscriptionId, uint credit) => throw new NotSupportedException();

        public void OnCommit(in FrameHeader header, uint subscriptionId, ulong offset, ReadOnlySpan<byte> topic) => throw new NotSupportedException();

        public void OnJoinGroup(in FrameHeader header, in JoinGroupFrame frame) => throw new NotSupportedException();

        public void OnAck(in FrameHeader header, in AckFrame frame) => throw new NotSupportedException();

        public void OnNack(in FrameHeader header, in NackFrame frame) => throw new NotSupportedException();

        public void OnAdmin(in FrameHeader header, in AdminFrame frame) => throw new NotSupportedException();
    }
}
