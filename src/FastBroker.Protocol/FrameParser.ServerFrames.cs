using FastBroker.Protocol.Internal;

namespace FastBroker.Protocol;

/// <summary>Bodies of the frames a server sends (docs/protocol.md, one table each).</summary>
public static partial class FrameParser
{
    private static bool ParseWelcome<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!(c.U16("version", out var version)
            && c.Reserved16("reserved")
            && c.U32("maxFrameSize", out var maxFrameSize)
            && c.U64("features", out var features)
            && c.U64("connectionId", out var connectionId)
            && c.U32("maxSubscriptions", out var maxSubscriptions)
            && c.U32("heartbeatIntervalMs", out var heartbeat)
            && c.Str8("serverName", 0, allowEmpty: true, out var name)
            && c.Str8("serverVersion", 1, allowEmpty: true, out var serverVersion)
            && c.End()))
        {
            return false;
        }

        handler.OnWelcome(header, new WelcomeFrame
        {
            Version = version,
            MaxFrameSize = maxFrameSize,
            Features = (ProtocolFeatures)features,
            ConnectionId = connectionId,
            MaxSubscriptions = maxSubscriptions,
            HeartbeatIntervalMs = heartbeat,
            ServerName = name,
            ServerVersion = serverVersion,
        });
        return true;
    }

    private static bool ParseServerPing<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!c.End())
        {
            return false;
        }

        handler.OnPing(header);
        return true;
    }

    private static bool ParseServerPong<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!c.End())
        {
            return false;
        }

        handler.OnPong(header);
        return true;
    }

    private static bool ParseOk<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        // 8 bytes, or 16 for the answer to an INIT_PRODUCER with an epoch (the epoch second).
        if (!c.U64("value", out var value))
        {
            return false;
        }

        var epoch = 0UL;
        if (c.Remaining > 0 && !c.U64("epoch", out epoch))
        {
            return false;
        }

        if (!c.End())
        {
            return false;
        }

        handler.OnOk(header, value, epoch);
        return true;
    }

    private static bool ParseError<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!(c.U16("code", out var code)
            && c.Reserved16("reserved")
            && c.U32("subscriptionId", out var id)
            && c.Str16("reason", out var reason)
            && c.End()))
        {
            return false;
        }

        handler.OnError(header, new ErrorFrame
        {
            Code = (ErrorCode)code,
            SubscriptionId = id,
            CloseConnection = (header.Flags & (byte)ErrorFlags.CloseConnection) != 0,
            SubscriptionEnded = (header.Flags & (byte)ErrorFlags.SubscriptionEnded) != 0,
            Reason = reason,
        });
        return true;
    }

    private static bool ParseConfirm<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!c.U16("rangeCount", out var count))
        {
            return false;
        }

        if (count == 0)
        {
            return c.Fail("rangeCount", Reasons.ZeroCount);
        }

        if (!c.Reserved16("reserved"))
        {
            return false;
        }

        var start = c.Position;
        for (var i = 0; i < count; i++)
        {
            if (!(c.U64("ranges.firstRequestId", out _) && c.U32("ranges.count", out var n)))
            {
                return false;
            }

            if (n == 0)
            {
                return c.Fail("ranges.count", Reasons.ZeroCount);
            }

            if (!(c.U16("ranges.status", out _) && c.U16("ranges.flags", out var flags)))
            {
                return false;
            }

            if ((flags & ~1) != 0)
            {
                return c.Fail("ranges.flags", Reasons.UnknownFlags);
            }

            if (!c.U64("ranges.firstOffset", out _))
            {
                return false;
            }
        }

        if (!c.End())
        {
            return false;
        }

        handler.OnConfirm(header, new ConfirmFrame(c.Sequence.Slice(start, c.Position), count));
        return true;
    }

    private static bool ParseDeliver<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!(c.SubscriptionId(out var id) && ReadDeliveryCount(ref c, out var deliveryCount)))
        {
            return false;
        }

        if (!(c.U64("offset", out var offset)
            && c.I64("timestampNs", out var timestamp)
            && c.Str8("topic", 0, allowEmpty: false, out var topic)
            && c.Message(out var key, out var headers, out var payload, out var block)
            && c.End()))
        {
            return false;
        }

        handler.OnDeliver(header, new DeliverFrame
        {
            SubscriptionId = id,
            DeliveryCount = deliveryCount,
            Offset = offset,
            TimestampNs = timestamp,
            Topic = topic,
            Key = key,
            Headers = headers,
            Payload = payload,
            MessageBlock = block,
        });
        return true;
    }

    private static bool ParseDeliverBatch<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler, out int index)
        where THandler : struct, IServerFrameHandler
    {
        index = -1;
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
        if (c.TryGetContiguousUnread(out var entries) && ContiguousEntries.IsValid(entries, count, ContiguousEntries.DeliverPrefix))
        {
            c.Advance(entries.Length);
        }
        else if (!EntriesFieldByField(ref c, count, deliveries: true, out index))
        {
            return false;
        }

        index = -1;
        if (!c.End())
        {
            return false;
        }

        handler.OnDeliverBatch(header, new DeliverBatchFrame
        {
            SubscriptionId = id,
            Count = count,
            Entries = c.Sequence.Slice(start, c.Position),
            Scratch = c.Scratch,
        });
        return true;
    }

    private static bool ParseDropped<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!(c.SubscriptionId(out var id)
            && c.Reserved32("reserved")
            && c.U64("droppedCount", out var dropped)
            && c.U64("resumeOffset", out var resume)
            && c.End()))
        {
            return false;
        }

        handler.OnDropped(header, id, dropped, resume);
        return true;
    }

    private static bool ParseAdminResult<THandler>(ref FieldCursor c, in FrameHeader header, ref THandler handler)
        where THandler : struct, IServerFrameHandler
    {
        if (!c.U8("query", out var query))
        {
            return false;
        }

        if (query is 0 or > (byte)AdminQuery.ServerStats)
        {
            return c.Fail("query", Reasons.UndefinedValue);
        }

        if (!c.U8("format", out var format))
        {
            return false;
        }

        if (format != (byte)AdminResultFormat.Json)
        {
            return c.Fail("format", Reasons.UndefinedValue);
        }

        if (!(c.Reserved16("reserved") && c.Bytes32("result", out var result) && c.End()))
        {
            return false;
        }

        handler.OnAdminResult(header, new AdminResultFrame { Query = (AdminQuery)query, Format = (AdminResultFormat)format, Result = result });
        return true;
    }

    /// <summary>
    /// Checks <paramref name="count"/> batch entries field by field (PUBLISH_BATCH's, or DELIVER_BATCH's when
    /// <paramref name="deliveries"/>): what names the first bad field and, in <paramref name="index"/>, its message. The
    /// contiguous check (<see cref="ContiguousEntries.IsValid"/>) must accept exactly what this accepts
    /// (ContiguousBatchTests).
    /// </summary>
    internal static bool EntriesFieldByField(ref FieldCursor c, int count, bool deliveries, out int index)
    {
        for (index = 0; index < count; index++)
        {
            var ok = deliveries
                ? ReadDeliveryCount(ref c, out _) && c.U64("offset", out _) && c.I64("timestampNs", out _)
                : c.U32("ttlMs", out _);
            if (!(ok && c.Str8("topic", 0, allowEmpty: false, out _) && c.Message(out _, out _, out _, out _)))
            {
                return false;
            }
        }

        index = -1;
        return true;
    }

    private static bool ReadDeliveryCount(ref FieldCursor c, out uint deliveryCount)
    {
        if (!c.U32("deliveryCount", out deliveryCount))
        {
            return false;
        }

        return deliveryCount != 0 || c.Fail("deliveryCount", Reasons.ZeroDeliveryCount);
    }
}
