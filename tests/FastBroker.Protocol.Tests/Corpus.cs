using System.Buffers;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>One valid frame of every type, for fuzzing and allocation tests.</summary>
internal static class Corpus
{
    public static byte[] Headers()
    {
        var buffer = new byte[64];
        var hw = new HeaderBlockWriter(buffer);
        hw.TryAdd("fb-reply-to"u8, "_inbox.1"u8);
        hw.TryAdd("h"u8, "v"u8);
        return hw.WrittenSpan.ToArray();
    }

    public static byte[][] ClientFrames()
    {
        var headers = Headers();
        return
        [
            One(w => FrameWriter.WriteHello(w, 1, "c"u8, "1"u8, ProtocolFeatures.Batching, "tok"u8)),
            One(w => FrameWriter.WritePing(w, 2)),
            One(w => FrameWriter.WritePong(w, 3)),
            One(w => FrameWriter.WritePublish(w, 4, "orders.eu"u8, "payload"u8, "key"u8, headers, Durability.Fsynced, 10, 1, 2)),
            One(w =>
            {
                var b = new PublishBatchWriter(w, 1024, 5);
                b.TryAdd("a"u8, "1"u8, default, headers);
                b.TryAdd("b.c"u8, "22"u8, "k"u8);
                b.Complete();
            }),
            One(w => FrameWriter.WriteSubscribe(w, 6, 1, "orders.>"u8, 10, StartKind.Offset, 5, "d"u8, StartKind.Latest, headers)),
            One(w => FrameWriter.WriteUnsubscribe(w, 7, 1)),
            One(w => FrameWriter.WriteCredit(w, 8, 1, 5)),
            One(w => FrameWriter.WriteCommit(w, 9, 1, 99, "orders.eu"u8)),
            One(w => FrameWriter.WriteJoinGroup(w, 10, 2, "g"u8, "jobs"u8, 4)),
            One(w => FrameWriter.WriteAck(w, 11, 2, [new DeliveryTag(1, 1), new DeliveryTag(2, 1)])),
            One(w => FrameWriter.WriteNack(w, 12, 2, new DeliveryTag(3, 1), true, 10, "err"u8)),
            One(w => FrameWriter.WriteAdmin(w, 13, AdminQuery.TopicStats, "orders.eu"u8)),
        ];
    }

    public static byte[][] ServerFrames()
    {
        var headers = Headers();
        return
        [
            One(w => FrameWriter.WriteWelcome(w, 1, 1, 1 << 20, ProtocolFeatures.Batching, 5, 100, 1000, "s"u8, "1"u8)),
            One(w => FrameWriter.WritePing(w, 2)),
            One(w => FrameWriter.WriteOk(w, 3, 4)),
            One(w => FrameWriter.WriteError(w, 4, ErrorCode.UnknownTopic, "no such topic"u8, ErrorFlags.None, 0)),
            One(w =>
            {
                var c = new ConfirmWriter(w, 256);
                c.TryAdd(1, ErrorCode.None, 10);
                c.TryAdd(2, ErrorCode.None, 11);
                c.TryAdd(3, ErrorCode.StorageFull, 0);
                c.Complete();
            }),
            One(w => FrameWriter.WriteDeliver(w, 1, 1, 10, 123, "orders.eu"u8, "payload"u8, "key"u8, headers)),
            One(w =>
            {
                var b = new DeliverBatchWriter(w, 1024, 1);
                b.TryAdd(1, 10, 1, "a"u8, "x"u8, default, headers);
                b.TryAdd(2, 11, 2, "b"u8, "y"u8);
                b.Complete();
            }),
            One(w => FrameWriter.WriteDropped(w, 1, 5, 20)),
            One(w => FrameWriter.WriteAdminResult(w, 13, AdminQuery.TopicStats, "{}"u8)),
        ];
    }

    private static byte[] One(Action<ArrayBufferWriter<byte>> write)
    {
        var w = new ArrayBufferWriter<byte>();
        write(w);
        return w.WrittenSpan.ToArray();
    }
}
