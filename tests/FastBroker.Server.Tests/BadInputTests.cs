using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>Invariant 7: bad input gets a clear error to the one who sent it; everyone else keeps being served.</summary>
public class BadInputTests
{
    [Fact]
    public async Task Random_bytes_get_an_error_and_close_while_a_good_client_keeps_working()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var good = await GoodClient.StartAsync(f);
        await good.WhileAsync(async () =>
        {
            await using (var bad = await RawConnection.ConnectAsync(f.EndPoint))
            {
                var junk = new byte[256];
                new Random(7).NextBytes(junk);
                junk[3] = 0x7F; // a length field far over the limit
                await bad.SendRawAsync(junk);
                var error = await bad.ExpectClosedWithAsync(ErrorCode.FrameTooLarge);
                Assert.Equal("frame: length field exceeds the maximum frame size", error.ErrorReason);
            }

            await using (var bad = await f.ConnectAsync())
            {
                var junk = new byte[4096];
                new Random(8).NextBytes(junk);
                junk[0] = 40; // a plausible length: the garbage is parsed as a frame
                junk[1] = junk[2] = junk[3] = 0;
                await bad.SendRawAsync(junk);
                var frames = await bad.ReadUntilClosedAsync();
                Assert.True(frames[^1].CloseConnection && frames[^1].ErrorCode is ErrorCode.MalformedFrame or ErrorCode.UnexpectedFrame, $"got {string.Join(" | ", frames)}");
            }
        });
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task A_truncated_frame_then_close_is_dropped_quietly()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var good = await GoodClient.StartAsync(f);
        var baseline = f.Server.ConnectionCount;

        await good.WhileAsync(async () =>
        {
            await using var bad = await f.ConnectAsync();
            var w = new ArrayBufferWriter<byte>();
            FrameWriter.WritePublish(w, 1, "orders"u8, new byte[500]);
            await bad.SendRawAsync(w.WrittenMemory[..300]);
            bad.ShutdownSend();
            Assert.Empty(await bad.ReadUntilClosedAsync());
        });

        Eventually.True(() => f.Server.ConnectionCount == baseline, "the truncated connection is gone");
        Assert.False(f.Broker.TopicExists("orders"));
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task A_frame_over_MaxFrameSize_is_refused_from_its_length_field_before_the_body_arrives()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { MaxFrameSize = 64 * 1024 });
        await using var good = await GoodClient.StartAsync(f);
        await good.WhileAsync(async () =>
        {
            await using var bad = await f.ConnectAsync();
            Assert.Equal(64u * 1024, bad.Welcome!.MaxFrameSize);

            // Only the 16-byte header of a 64 KiB + 1 frame: the server must answer without waiting for the rest.
            var header = new byte[16];
            BinaryPrimitives.WriteUInt32LittleEndian(header, (64 * 1024) - 4 + 1);
            header[4] = (byte)FrameType.Publish;
            await bad.SendRawAsync(header);
            var error = await bad.ExpectClosedWithAsync(ErrorCode.FrameTooLarge);
            Assert.Equal("frame: length field exceeds the maximum frame size", error.ErrorReason);
        });
    }

    [Fact]
    public async Task Before_hello_frames_are_limited_to_64_KiB()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { MaxFrameSize = 1 << 20 });
        await using var bad = await RawConnection.ConnectAsync(f.EndPoint);
        var header = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 100_000);
        header[4] = (byte)FrameType.Hello;
        await bad.SendRawAsync(header);
        await bad.ExpectClosedWithAsync(ErrorCode.FrameTooLarge);
    }

    /// <summary>
    /// A filter no message can carry: the embedded broker and the .NET client refuse it with InvalidArgument. On the wire
    /// a filter is a header entry, whose name (str8) cannot be longer than 255 bytes nor its value (bytes16) longer than
    /// 65535, so the server can only be sent one with an empty name, which breaks the entry's encoding as in any header
    /// block: MalformedFrame and close, as docs/protocol.md (sections 2 and 11) says, and nothing subscribed.
    /// </summary>
    [Fact]
    public async Task A_header_filter_with_an_empty_name_is_a_malformed_SUBSCRIBE()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var bad = await f.ConnectAsync();
        await bad.SendAsync(w => FrameWriter.WriteSubscribe(w, 7, 1, "fx"u8, 10, filters: [0, 3, 0, (byte)'U', (byte)'S', (byte)'D']));
        var error = await bad.ExpectClosedWithAsync(ErrorCode.MalformedFrame);
        Assert.Equal(("SUBSCRIBE: field 'filters': must not be empty", 7UL), (error.ErrorReason, error.RequestId));
        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);
    }

    /// <summary>
    /// A SUBSCRIBE filter's name is a header entry's <c>str8</c>, valid UTF-8 by the protocol (sections 2 and 11), so a
    /// name that is not is a malformed frame, refused before the server reads any filter: never decoded with U+FFFD in
    /// place of its bytes, so two different invalid names (0xFF and 0xFE here) do not become one name given two values,
    /// nor one a filter on other text than was sent. The sender gets MalformedFrame and the connection closes, as for an
    /// empty name; nothing is subscribed and every other client keeps being served.
    /// </summary>
    [Fact]
    public async Task A_header_filter_name_that_is_not_UTF8_is_a_malformed_SUBSCRIBE_never_a_replaced_name()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var good = await GoodClient.StartAsync(f);
        await good.WhileAsync(async () =>
        {
            byte[][] blocks =
            [
                [1, 0xFF, 3, 0, (byte)'U', (byte)'S', (byte)'D', 1, 0xFE, 3, 0, (byte)'E', (byte)'U', (byte)'R'],
                [2, 0xC3, 0x28, 3, 0, (byte)'U', (byte)'S', (byte)'D'],
                [.. Headers.Of(("ccy", "USD")), 3, (byte)'r', (byte)'e', 0xED, 1, 0, (byte)'x'],
            ];
            foreach (var block in blocks)
            {
                await using var bad = await f.ConnectAsync();
                await bad.SendAsync(w => FrameWriter.WriteSubscribe(w, 7, 1, "fx"u8, 10, filters: block));
                var error = await bad.ReadAsync();
                Assert.Equal((FrameType.Error, ErrorCode.MalformedFrame, true, "SUBSCRIBE: field 'filters': text is not valid UTF-8", 7UL), (error.Type, error.ErrorCode, error.CloseConnection, error.ErrorReason, error.RequestId));
                Assert.Empty(await bad.ReadUntilClosedAsync());
            }

            // A value is bytes16, checked by the server: refused with InvalidArgument, and the connection stays open.
            await using var open = await f.ConnectAsync();
            await open.SubscribeAsync(8, 1, "fx", 10, filters: [3, (byte)'c', (byte)'c', (byte)'y', 1, 0, 0xFF]);
            var refused = await open.ReadAsync();
            Assert.Equal((FrameType.Error, ErrorCode.InvalidArgument, false, "SUBSCRIBE: header filter 'ccy': a value must be UTF-8 text (the broker compares values as text), and this one is not", 8UL), (refused.Type, refused.ErrorCode, refused.CloseConnection, refused.ErrorReason, refused.RequestId));
            await open.SubscribeAsync(9, 1, "fx", 10, filters: Headers.Of(("ccy", "USD")));
            Assert.Equal(FrameType.Ok, (await open.ReadAsync()).Type);
            Assert.Equal(["fx", "good"], f.Broker.GetSnapshot().Subscriptions.Select(s => s.Pattern).Order(StringComparer.Ordinal));
        });

        Assert.Empty(f.Failures);
    }

    /// <summary>
    /// Every name or text a client sends is a <c>str8</c> or <c>str16</c>, valid UTF-8 by the protocol: one that is not
    /// is refused whole (MalformedFrame naming its field, and the connection closes) before the server decodes it, never
    /// taken with U+FFFD in place of its bytes, which would make two different names one (a topic, a durable name, a
    /// group). Nothing is created under such a name and every other client keeps being served. Producer ids are u64,
    /// not text; auth tokens are compared as bytes.
    /// </summary>
    [Theory]
    [MemberData(nameof(NotUtf8Cases))]
    public async Task A_name_or_text_that_is_not_UTF8_is_refused_whole_never_decoded_with_replacements(string frame, string reason)
    {
        await using var f = await ServerFixture.StartAsync();
        await using var good = await GoodClient.StartAsync(f);
        await good.WhileAsync(async () =>
        {
            await using var bad = frame.StartsWith("HELLO", StringComparison.Ordinal) ? await RawConnection.ConnectAsync(f.EndPoint) : await f.ConnectAsync();
            await bad.SendAsync(s_notUtf8Frames[frame]);
            var error = await bad.ReadAsync();
            Assert.Equal((FrameType.Error, ErrorCode.MalformedFrame, true, reason, 9UL), (error.Type, error.ErrorCode, error.CloseConnection, error.ErrorReason, error.RequestId));
            Assert.Empty(await bad.ReadUntilClosedAsync());
        });

        var snapshot = f.Broker.GetSnapshot();
        Assert.Equal(["good"], snapshot.Topics.Select(t => t.Name));
        Assert.Equal([("good", (string?)null)], snapshot.Subscriptions.Select(s => (s.Pattern, s.DurableName)));
        Assert.Empty(snapshot.Groups);
        Assert.Empty(f.Failures);
    }

    public static TheoryData<string, string> NotUtf8Cases() => new()
    {
        { "HELLO clientName", "HELLO: field 'clientName': text is not valid UTF-8" },
        { "HELLO clientVersion", "HELLO: field 'clientVersion': text is not valid UTF-8" },
        { "PUBLISH topic", "PUBLISH: field 'topic': text is not valid UTF-8" },
        { "PUBLISH header name", "PUBLISH: field 'headers': text is not valid UTF-8" },
        { "PUBLISH_BATCH topic", "PUBLISH_BATCH: entry 1, field 'topic': text is not valid UTF-8" },
        { "PUBLISH_BATCH header name", "PUBLISH_BATCH: entry 0, field 'headers': text is not valid UTF-8" },
        { "SUBSCRIBE pattern", "SUBSCRIBE: field 'pattern': text is not valid UTF-8" },
        { "SUBSCRIBE durableName", "SUBSCRIBE: field 'durableName': text is not valid UTF-8" },
        { "JOIN_GROUP group", "JOIN_GROUP: field 'group': text is not valid UTF-8" },
        { "JOIN_GROUP topic", "JOIN_GROUP: field 'topic': text is not valid UTF-8" },
        { "COMMIT topic", "COMMIT: field 'topic': text is not valid UTF-8" },
        { "NACK errorText", "NACK: field 'errorText': text is not valid UTF-8" },
        { "ADMIN argument", "ADMIN: field 'argument': text is not valid UTF-8" },
    };

    // "g\xFF" and "g\xFE" would both decode to "g\uFFFD"; "\xED\xA0\x80" is an encoded surrogate (not UTF-8 either).
    private static readonly Dictionary<string, Action<ArrayBufferWriter<byte>>> s_notUtf8Frames = new()
    {
        ["HELLO clientName"] = w => FrameWriter.WriteHello(w, 9, [(byte)'c', 0xFF], "1"u8, RawConnection.AllFeatures),
        ["HELLO clientVersion"] = w => FrameWriter.WriteHello(w, 9, "c"u8, [0xED, 0xA0, 0x80], RawConnection.AllFeatures),
        ["PUBLISH topic"] = w => FrameWriter.WritePublish(w, 9, [(byte)'g', 0xFE], "x"u8),
        ["PUBLISH header name"] = w => FrameWriter.WritePublish(w, 9, "good"u8, "x"u8, headers: [2, (byte)'h', 0xFF, 1, 0, (byte)'v']),
        ["PUBLISH_BATCH topic"] = w =>
        {
            var b = new PublishBatchWriter(w, 4096, 9);
            b.TryAdd("good"u8, "one"u8);
            b.TryAdd([(byte)'g', 0xFF], "two"u8);
            b.Complete();
        },
        ["PUBLISH_BATCH header name"] = w =>
        {
            var b = new PublishBatchWriter(w, 4096, 9);
            b.TryAdd("good"u8, "one"u8, headers: [2, (byte)'h', 0xFE, 1, 0, (byte)'v']);
            b.Complete();
        },
        ["SUBSCRIBE pattern"] = w => FrameWriter.WriteSubscribe(w, 9, 2, [(byte)'g', 0xFF], 10),
        ["SUBSCRIBE durableName"] = w => FrameWriter.WriteSubscribe(w, 9, 2, "good"u8, 10, durableName: [(byte)'d', 0xFE]),
        ["JOIN_GROUP group"] = w => FrameWriter.WriteJoinGroup(w, 9, 2, [(byte)'g', 0xFF], "good"u8, 5),
        ["JOIN_GROUP topic"] = w => FrameWriter.WriteJoinGroup(w, 9, 2, "grp"u8, [(byte)'g', 0xFE], 5),
        ["COMMIT topic"] = w => FrameWriter.WriteCommit(w, 9, 1, 0, [(byte)'g', 0xFF]),
        ["NACK errorText"] = w => FrameWriter.WriteNack(w, 9, 1, new DeliveryTag(0, 1), requeue: true, errorText: [(byte)'e', 0xC0, 0x80]),
        ["ADMIN argument"] = w => FrameWriter.WriteAdmin(w, 9, AdminQuery.TopicStats, [(byte)'g', 0xFF]),
    };

    [Fact]
    public async Task A_malformed_body_gets_MalformedFrame_with_the_specs_reason_and_close()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var good = await GoodClient.StartAsync(f);

        await good.WhileAsync(async () =>
        {
            await using (var bad = await f.ConnectAsync())
            {
                var w = new ArrayBufferWriter<byte>();
                FrameWriter.WritePublish(w, 12, "abc"u8, "x"u8);
                var bytes = w.WrittenSpan.ToArray();
                bytes[16 + 22] = 0xFF; // the topic's first character: not UTF-8 any more
                await bad.SendRawAsync(bytes);
                var error = await bad.ExpectClosedWithAsync(ErrorCode.MalformedFrame);
                Assert.Equal("PUBLISH: field 'topic': text is not valid UTF-8", error.ErrorReason);
                Assert.Equal(12UL, error.RequestId);
            }

            await using (var bad = await f.ConnectAsync())
            {
                await bad.SendAsync(w => FrameWriter.WriteCredit(w, 13, 1, 1));
                var bytes = new ArrayBufferWriter<byte>();
                FrameWriter.WriteCredit(bytes, 14, 1, 1);
                var frame = bytes.WrittenSpan.ToArray();
                BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(20), 0);
                await bad.SendRawAsync(frame);
                var frames = await bad.ReadUntilClosedAsync();
                Assert.Equal(ErrorCode.UnknownSubscription, frames[0].ErrorCode);
                Assert.Equal("CREDIT: field 'credit': credit must be at least 1", frames[^1].ErrorReason);
                Assert.True(frames[^1].CloseConnection);
            }

            await using (var bad = await f.ConnectAsync())
            {
                var w = new ArrayBufferWriter<byte>();
                FrameWriter.WritePing(w, 15);
                var bytes = w.WrittenSpan.ToArray();
                bytes[4] = (byte)FrameType.Deliver; // a server-only type
                await bad.SendRawAsync(bytes);
                var error = await bad.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
                Assert.Equal("DELIVER: frame type is not valid in this direction", error.ErrorReason);
            }
        });
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task Hundreds_of_mutated_frames_never_break_the_server()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var good = await GoodClient.StartAsync(f);
        var corpus = Corpus();
        var rng = new Random(20240601);
        const int Rounds = 300;
        var errors = 0;
        await good.WhileAsync(async () =>
        {
            for (var round = 0; round < Rounds; round++)
            {
                var frame = Mutate(corpus[rng.Next(corpus.Count)], rng);
                await using var c = await f.ConnectAsync();
                await c.SendRawAsync(frame);
                var ping = new ArrayBufferWriter<byte>();
                FrameWriter.WritePing(ping, 999);
                await c.SendRawAsync(ping.WrittenMemory);
                c.ShutdownSend();

                // End of stream must come (no hang), and everything before it must be a well-formed frame (the reader
                // asserts that). A mutated frame either works, fails on its own, or closes this connection with an ERROR.
                var frames = await c.ReadUntilClosedAsync();
                if (frames.Any(x => x.CloseConnection))
                {
                    errors++;
                    Assert.True(frames[^1].CloseConnection, "the CLOSE error is the last frame");
                }
            }
        });

        Assert.True(errors > 0, "some mutations were refused");
        await good.RoundAsync();
        Eventually.True(() => f.Server.ConnectionCount == 2, "every fuzzed connection is gone");
        Assert.Empty(f.Failures);
    }

    private static List<byte[]> Corpus()
    {
        var frames = new List<Action<ArrayBufferWriter<byte>>>
        {
            w => FrameWriter.WritePublish(w, 1, "fuzz.a"u8, "payload"u8, "key"u8, Headers.Of(("h", "v"))),
            w =>
            {
                var b = new PublishBatchWriter(w, 4096, 2);
                b.TryAdd("fuzz.b"u8, "one"u8);
                b.TryAdd("fuzz.c"u8, "two"u8, headers: Headers.Of(("x", "y")), ttlMs: 1000);
                b.Complete();
            },
            w => FrameWriter.WriteSubscribe(w, 3, 1, "fuzz.>"u8, 10, Protocol.StartKind.Earliest, filters: Headers.Of(("h", "v"))),
            w => FrameWriter.WriteSubscribe(w, 4, 2, "fuzz.a"u8, 10, Protocol.StartKind.Committed, durableName: "fz"u8),
            w => FrameWriter.WriteCredit(w, 5, 1, 3),
            w => FrameWriter.WriteCommit(w, 6, 2, 1, "fuzz.a"u8),
            w => FrameWriter.WriteJoinGroup(w, 7, 3, "grp"u8, "fuzz.a"u8, 5, 1000, 3),
            w => FrameWriter.WriteAck(w, 8, 3, [new DeliveryTag(0, 1), new DeliveryTag(1, 1)]),
            w => FrameWriter.WriteNack(w, 9, 3, new DeliveryTag(0, 1), true, 10, "err"u8),
            w => FrameWriter.WriteAdmin(w, 10, AdminQuery.ListTopics, "fuzz.*"u8),
            w => FrameWriter.WriteUnsubscribe(w, 11, 1),
            w => FrameWriter.WriteHello(w, 12, "x"u8, "y"u8, ProtocolFeatures.Batching),
        };
        return [.. frames.Select(write =>
        {
            var w = new ArrayBufferWriter<byte>();
            write(w);
            return w.WrittenSpan.ToArray();
        })];
    }

    private static byte[] Mutate(byte[] frame, Random rng)
    {
        var bytes = (byte[])frame.Clone();
        switch (rng.Next(5))
        {
            case 0: // bit flips anywhere
                for (var i = 0; i < 1 + rng.Next(3); i++)
                {
                    var at = rng.Next(bytes.Length);
                    bytes[at] ^= (byte)(1 << rng.Next(8));
                }

                return bytes;
            case 1: // bit flips in the body only (the header stays plausible)
                for (var i = 0; i < 1 + rng.Next(3); i++)
                {
                    var at = 16 + rng.Next(bytes.Length - 16);
                    bytes[at] ^= (byte)(1 << rng.Next(8));
                }

                return bytes;
            case 2: // truncation (the shutdown then ends the connection mid-frame)
                return bytes[..rng.Next(bytes.Length)];
            case 3: // the length field changed a little or a lot
                var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
                var changed = rng.Next(3) switch
                {
                    0 => length + (uint)rng.Next(1, 8),
                    1 => length - (uint)Math.Min(length, rng.Next(1, 8)),
                    _ => (uint)rng.Next(),
                };
                BinaryPrimitives.WriteUInt32LittleEndian(bytes, changed);
                return bytes;
            default: // a random byte in a random place, plus trailing garbage
                bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                var extra = new byte[rng.Next(1, 16)];
                rng.NextBytes(extra);
                return [.. bytes, .. extra];
        }
    }

    /// <summary>A well-behaved publisher + subscriber pair; each round publishes and must receive the message.</summary>
    private sealed class GoodClient : IAsyncDisposable
    {
        private RawConnection _pub = null!;
        private RawConnection _sub = null!;
        private ulong _next = 1;

        public static async Task<GoodClient> StartAsync(ServerFixture f)
        {
            var g = new GoodClient { _pub = await f.ConnectAsync(), _sub = await f.ConnectAsync() };
            await g._sub.SubscribeAsync(1, 1, "good", 1_000_000, Protocol.StartKind.Latest);
            Assert.Equal(FrameType.Ok, (await g._sub.ReadAsync()).Type);
            return g;
        }

        public async Task RoundAsync()
        {
            var id = _next++;
            await _pub.PublishAsync(id, "good", $"round {id}");
            var confirm = await _pub.ReadConfirmsAsync([id]);
            Assert.Equal(ErrorCode.None, confirm[id].Status);
            var d = await _sub.ReadDeliveriesAsync(1);
            Assert.Equal($"round {id}", Encoding.UTF8.GetString(d[0].Payload));
        }

        /// <summary>Keeps publishing and receiving rounds while <paramref name="bad"/> runs, and at least once after it.</summary>
        public async Task WhileAsync(Func<Task> bad)
        {
            var done = false;
            var rounds = 0;
            var loop = Task.Run(async () =>
            {
                do
                {
                    await RoundAsync();
                    rounds++;
                }
                while (!Volatile.Read(ref done));
            });
            try
            {
                await bad();
            }
            finally
            {
                Volatile.Write(ref done, true);
            }

            await Eventually.Completes(loop);
            Assert.True(rounds >= 1);
        }

        public async ValueTask DisposeAsync()
        {
            await _pub.DisposeAsync();
            await _sub.DisposeAsync();
        }
    }
}
