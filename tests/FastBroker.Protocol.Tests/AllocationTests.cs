using System.Buffers;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ProtocolTests;

/// <summary>Parsing and writing allocate nothing in steady state (asserts stay outside the measured block).</summary>
public class AllocationTests
{
    private const int Rounds = 200;

    [Fact]
    public void Parsing_every_frame_type_allocates_nothing_whole_or_split()
    {
        var client = Corpus.ClientFrames().SelectMany(f => f).ToArray();
        var server = Corpus.ServerFrames().SelectMany(f => f).ToArray();
        var sequences = new[]
        {
            (Segments.Whole(client), true), (Segments.OneByte(client), true), (Segments.Random(client, new Random(5)), true),
            (Segments.Whole(server), false), (Segments.OneByte(server), false), (Segments.Random(server, new Random(6)), false),
        };

        var handler = new Walker();
        var failed = 0;
        var bytes = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var r = 0; r < Rounds; r++)
            {
                foreach (var (sequence, fromClient) in sequences)
                {
                    var buffer = sequence;
                    FrameError error;
                    if (fromClient)
                    {
                        while (FrameParser.TryParseClientFrame(ref buffer, ref handler, ProtocolConstants.DefaultMaxFrameSize, out error))
                        {
                        }
                    }
                    else
                    {
                        while (FrameParser.TryParseServerFrame(ref buffer, ref handler, ProtocolConstants.DefaultMaxFrameSize, out error))
                        {
                        }
                    }

                    failed += error.IsError || buffer.Length != 0 ? 1 : 0;
                }
            }
        });

        Assert.Equal(0, failed);
        Assert.True(handler.Frames > 0);
        Assert.Equal(0, bytes);
    }

    [Fact]
    public void Parsing_a_malformed_frame_allocates_nothing()
    {
        var bad = Bytes.Frame(FrameType.Publish, Bytes.PublishPrefix().U8(3).Raw(0x61, 0xC3, 0x28).Message());
        var sequence = Segments.OneByte(bad);
        var handler = new Walker();
        var errors = 0;
        var bytes = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var r = 0; r < Rounds; r++)
            {
                var buffer = sequence;
                FrameParser.TryParseClientFrame(ref buffer, ref handler, ProtocolConstants.DefaultMaxFrameSize, out var error);
                errors += error.IsError ? 1 : 0;
            }
        });

        Assert.True(errors > 0);
        Assert.Equal(0, bytes);
    }

    [Fact]
    public void Writing_every_frame_type_allocates_nothing()
    {
        var w = new ArrayBufferWriter<byte>(64 * 1024);
        var headers = Corpus.Headers();
        var payload = new byte[100];
        var block = new byte[MessageBlock.GetLength(0, 0, payload.Length)];
        MessageBlock.Write(block, default, default, payload);
        var tags = new[] { new DeliveryTag(1, 1), new DeliveryTag(2, 1) };
        var bytes = AllocationMeter.MinBytesPerRound(() =>
        {
            for (var r = 0; r < Rounds; r++)
            {
                w.ResetWrittenCount();
                FrameWriter.WriteHello(w, 1, "c"u8, "1"u8, ProtocolFeatures.Batching, "tok"u8);
                FrameWriter.WriteWelcome(w, 1, 1, 1 << 20, ProtocolFeatures.Batching, 5, 100, 1000, "s"u8, "1"u8);
                FrameWriter.WritePing(w, 2);
                FrameWriter.WriteOk(w, 3, 4);
                FrameWriter.WriteError(w, 4, ErrorCode.UnknownTopic, "no such topic".AsSpan());
                FrameWriter.WritePublish(w, 5, "orders.eu"u8, payload, "key"u8, headers, Durability.Fsynced);
                var batch = new PublishBatchWriter(w, 4096, 6);
                batch.TryAdd("a"u8, payload, default, headers);
                batch.TryAdd("b"u8, payload);
                batch.Complete();
                var confirm = new ConfirmWriter(w, 1024);
                for (ulong i = 0; i < 100; i++)
                {
                    confirm.TryAdd(i, ErrorCode.None, 1000 + i);
                }

                confirm.Complete();
                FrameWriter.WriteSubscribe(w, 7, 1, "orders.>"u8, 10, StartKind.Earliest, 0, "d"u8, StartKind.Latest, headers);
                FrameWriter.WriteCredit(w, 8, 1, 5);
                FrameWriter.WriteCommit(w, 9, 1, 5);
                FrameWriter.WriteDeliver(w, 1, 1, 10, 123, "orders.eu"u8, payload, "key"u8, headers);
                FrameWriter.WriteDeliverBlock(w, 1, 1, 10, 123, "orders.eu"u8, block);
                var deliver = new DeliverBatchWriter(w, 4096, 1);
                deliver.TryAddBlock(1, 10, 1, "a"u8, block);
                deliver.TryAdd(1, 11, 1, "a"u8, payload);
                deliver.Complete();
                FrameWriter.WriteJoinGroup(w, 10, 2, "g"u8, "jobs"u8, 4);
                FrameWriter.WriteAck(w, 11, 2, tags);
                FrameWriter.WriteNack(w, 12, 2, tags[0], true, 10, "err"u8);
                FrameWriter.WriteDropped(w, 1, 1, 1);
                FrameWriter.WriteAdmin(w, 13, AdminQuery.ServerStats);
                FrameWriter.WriteAdminResult(w, 13, AdminQuery.ServerStats, "{}"u8);
            }
        });

        Assert.Equal(0, bytes);
        Assert.True(w.WrittenCount > 0);
    }
}
