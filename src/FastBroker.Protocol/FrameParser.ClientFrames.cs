using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>Bodies of the frames a client sends (docs/protocol.md, one table each).</summary>
public static partial class FrameParser
{
    private static bool ParseHello<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!c.U32("magic", out var magic))
        {
            return false;
        }

        if (magic != ProtocolConstants.Magic)
        {
            return c.Fail("magic", Reasons.BadMagic);
        }

        if (!(c.U16("minVersion", out var min) && c.U16("maxVersion", out var max)))
        {
            return false;
        }

        if (min > max)
        {
            return c.Fail("maxVersion", Reasons.VersionRange);
        }

        if (!(c.U64("features", out var features)
            && c.U32("maxInboundFrameSize", out var maxInbound)
            && c.Str8("clientName", 0, allowEmpty: true, out var name)
            && c.Str8("clientVersion", 1, allowEmpty: true, out var version)
            && c.Bytes16("authToken", out var token)
            && c.End()))
        {
            return false;
        }

        handler.OnHello(header, new HelloFrame
        {
            MinVersion = min,
            MaxVersion = max,
            Features = (ProtocolFeatures)features,
            MaxInboundFrameSize = maxInbound,
            ClientName = name,
            ClientVersion = version,
            AuthToken = token,
        });
        return true;
    }

    private static bool ParsePing<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!c.End())
        {
            return false;
        }

        handler.OnPing(header);
        return true;
    }

    private static bool ParsePong<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!c.End())
        {
            return false;
        }

        handler.OnPong(header);
        return true;
    }

    private static bool ParsePublish<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.U64("producerId", out var producerId)
            && c.U64("producerSequence", out var sequence)
            && c.U32("ttlMs", out var ttl)
            && ReadDurability(ref c, out var durability)
            && c.Str8("topic", 0, allowEmpty: false, out var topic)
            && c.Message(out var key, out var headers, out var payload, out var block)
            && c.End()))
        {
            return false;
        }

        handler.OnPublish(header, new PublishFrame
        {
            ProducerId = producerId,
            ProducerSequence = sequence,
            TtlMs = ttl,
            Durability = durability,
            NoConfirm = (header.Flags & (byte)PublishFlags.NoConfirm) != 0,
            Topic = topic,
            Key = key,
            Headers = headers,
            Payload = payload,
            MessageBlock = block,
        });
        return true;
    }

    private static bool ParsePublishBatch<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler, out int index)
        where THandler : struct, IClientFrameHandler
    {
        index = -1;
        if (!(c.U64("producerId", out var producerId)
            && c.U64("firstProducerSequence", out var sequence)
            && ReadDurability(ref c, out var durability)
            && c.Reserved8("reserved")
            && c.U16("count", out var count)))
        {
            return false;
        }

        if (count == 0)
        {
            return c.Fail("count", Reasons.ZeroCount);
        }

        var start = c.Position;
        if (c.TryGetContiguousUnread(out var entries) && ContiguousEntries.IsValid(entries, count, ContiguousEntries.PublishPrefix))
        {
            c.Advance(entries.Length);
        }
        else if (!EntriesFieldByField(ref c, count, deliveries: false, out index))
        {
            return false;
        }

        index = -1;
        if (!c.End())
        {
            return false;
        }

        handler.OnPublishBatch(header, new PublishBatchFrame
        {
            ProducerId = producerId,
            FirstProducerSequence = sequence,
            Durability = durability,
            NoConfirm = (header.Flags & (byte)PublishFlags.NoConfirm) != 0,
            Count = count,
            Entries = c.Sequence.Slice(start, c.Position),
            Scratch = c.Scratch,
        });
        return true;
    }

    private static bool ParseSubscribe<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id)
            && c.U32("initialCredit", out var credit)
            && c.U8("startKind", out var start)))
        {
            return false;
        }

        if (start > (byte)StartKind.Committed)
        {
            return c.Fail("startKind", Reasons.UndefinedValue);
        }

        if (!c.U8("fallbackKind", out var fallback))
        {
            return false;
        }

        if (fallback > (byte)StartKind.Earliest)
        {
            return c.Fail("fallbackKind", Reasons.UndefinedValue);
        }

        if (!(c.Reserved16("reserved")
            && c.U64("startValue", out var startValue)
            && c.Str8("pattern", 0, allowEmpty: false, out var pattern)
            && c.Str8("durableName", 1, allowEmpty: true, out var durable)
            && c.Headers("filters", out var filters)
            && c.End()))
        {
            return false;
        }

        handler.OnSubscribe(header, new SubscribeFrame
        {
            SubscriptionId = id,
            InitialCredit = credit,
            Start = (StartKind)start,
            Fallback = (StartKind)fallback,
            StartValue = startValue,
            Pattern = pattern,
            DurableName = durable,
            Filters = filters,
        });
        return true;
    }

    private static bool ParseInitProducer<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        // 8 bytes (an id) or 16 (an id and an epoch: feature ProducerEpoch).
        if (!c.U64("producerId", out var producerId))
        {
            return false;
        }

        ulong? epoch = null;
        if (c.Remaining > 0)
        {
            if (!c.U64("epoch", out var e))
            {
                return false;
            }

            epoch = e;
        }

        if (!c.End())
        {
            return false;
        }

        handler.OnInitProducer(header, producerId, epoch);
        return true;
    }

    private static bool ParseUnsubscribe<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id) && c.End()))
        {
            return false;
        }

        handler.OnUnsubscribe(header, id);
        return true;
    }

    private static bool ParseCredit<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id) && c.U32("credit", out var credit)))
        {
            return false;
        }

        if (credit == 0)
        {
            return c.Fail("credit", Reasons.ZeroCredit);
        }

        if (!c.End())
        {
            return false;
        }

        handler.OnCredit(header, id, credit);
        return true;
    }

    private static bool ParseCommit<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id)
            && c.Reserved32("reserved")
            && c.U64("offset", out var offset)
            && c.Str8("topic", 0, allowEmpty: true, out var topic)
            && c.End()))
        {
            return false;
        }

        handler.OnCommit(header, id, offset, topic);
        return true;
    }

    private static bool ParseJoinGroup<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id) && c.U32("prefetch", out var prefetch)))
        {
            return false;
        }

        if (prefetch == 0)
        {
            return c.Fail("prefetch", Reasons.ZeroCredit);
        }

        if (!(c.U32("visibilityTimeoutMs", out var visibility)
            && c.U16("maxDeliveries", out var maxDeliveries)
            && c.Reserved16("reserved")
            && c.Str8("group", 0, allowEmpty: false, out var group)
            && c.Str8("topic", 1, allowEmpty: false, out var topic)
            && c.End()))
        {
            return false;
        }

        handler.OnJoinGroup(header, new JoinGroupFrame
        {
            SubscriptionId = id,
            Prefetch = prefetch,
            VisibilityTimeoutMs = visibility,
            MaxDeliveries = maxDeliveries,
            Group = group,
            Topic = topic,
        });
        return true;
    }

    private static bool ParseAck<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id) && c.U16("count", out var count)))
        {
            return false;
        }

        if (count == 0)
        {
            return c.Fail("count", Reasons.ZeroCount);
        }

        if (!c.Reserved16("reserved"))
        {
            return false;
        }

        var start = c.Position;
        for (var i = 0; i < count; i++)
        {
            if (!(c.U64("tags.offset", out _) && c.U32("tags.deliveryCount", out var deliveryCount)))
            {
                return false;
            }

            if (deliveryCount == 0)
            {
                return c.Fail("tags.deliveryCount", Reasons.ZeroDeliveryCount);
            }
        }

        if (!c.End())
        {
            return false;
        }

        handler.OnAck(header, new AckFrame(id, c.Sequence.Slice(start, c.Position), count));
        return true;
    }

    private static bool ParseNack<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!(c.SubscriptionId(out var id) && c.U32("deliveryCount", out var deliveryCount)))
        {
            return false;
        }

        if (deliveryCount == 0)
        {
            return c.Fail("deliveryCount", Reasons.ZeroDeliveryCount);
        }

        if (!(c.U64("offset", out var offset)
            && c.U32("delayMs", out var delay)
            && c.Str16("errorText", out var text)
            && c.End()))
        {
            return false;
        }

        handler.OnNack(header, new NackFrame
        {
            SubscriptionId = id,
            Tag = new DeliveryTag(offset, deliveryCount),
            Requeue = (header.Flags & (byte)NackFlags.Requeue) != 0,
            DelayMs = delay,
            ErrorText = text,
        });
        return true;
    }

    private static bool ParseAdmin<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IClientFrameHandler
    {
        if (!c.U8("query", out var query))
        {
            return false;
        }

        if (query is 0 or > (byte)AdminQuery.ServerStats)
        {
            return c.Fail("query", Reasons.UndefinedValue);
        }

        if (!(c.Str8("argument", 0, allowEmpty: true, out var argument) && c.End()))
        {
            return false;
        }

        handler.OnAdmin(header, new AdminFrame { Query = (AdminQuery)query, Argument = argument });
        return true;
    }

    private static bool ReadDurability(ref FieldCursor c, out Durability durability)
    {
        durability = default;
        if (!c.U8("durability", out var raw))
        {
            return false;
        }

        if (raw > (byte)Durability.StandbyReceived)
        {
            return c.Fail("durability", Reasons.UndefinedValue);
        }

        durability = (Durability)raw;
        return true;
    }
}
