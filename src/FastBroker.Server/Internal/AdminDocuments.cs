using System.Text.Json;

namespace FastBroker.Server.Internal;

/// <summary>
/// The JSON documents of ADMIN_RESULT and of the admin HTTP endpoint, written with <see cref="Utf8JsonWriter"/> (no
/// reflection, AOT-safe). docs/protocol.md, "Admin documents", is their schema; keep the two in step.
/// </summary>
internal static class AdminDocuments
{
    /// <summary>ListTopics: <c>{"topics":[topic…]}</c>, by name.</summary>
    public static void WriteTopicList(Utf8JsonWriter w, BrokerSnapshot snapshot, TopicPattern? filter)
    {
        w.WriteStartObject();
        w.WriteStartArray("topics");
        foreach (var t in snapshot.Topics)
        {
            if (filter is null || filter.Matches(t.Name))
            {
                WriteTopic(w, t);
            }
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>TopicStats: <c>{"topic":topic,"subscriptions":[…],"groups":[…]}</c>; false when the topic does not exist.</summary>
    public static bool WriteTopicStats(Utf8JsonWriter w, BrokerSnapshot snapshot, string topic)
    {
        var t = snapshot.Topics.FirstOrDefault(x => x.Name == topic);
        if (t is null)
        {
            return false;
        }

        w.WriteStartObject();
        w.WritePropertyName("topic");
        WriteTopic(w, t);
        w.WriteStartArray("subscriptions");
        foreach (var s in snapshot.Subscriptions)
        {
            if (s.Positions.ContainsKey(topic))
            {
                WriteSubscription(w, s);
            }
        }

        w.WriteEndArray();
        w.WriteStartArray("groups");
        foreach (var g in snapshot.Groups)
        {
            if (g.Topic == topic)
            {
                WriteGroup(w, g);
            }
        }

        w.WriteEndArray();
        w.WriteEndObject();
        return true;
    }

    /// <summary>ListGroups: <c>{"groups":[group…]}</c>, of one topic or all.</summary>
    public static void WriteGroupList(Utf8JsonWriter w, BrokerSnapshot snapshot, string? topic)
    {
        w.WriteStartObject();
        w.WriteStartArray("groups");
        foreach (var g in snapshot.Groups.OrderBy(g => g.Topic, StringComparer.Ordinal).ThenBy(g => g.Group, StringComparer.Ordinal))
        {
            if (topic is null || g.Topic == topic)
            {
                WriteGroup(w, g);
            }
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>ServerStats: <c>{"server":{…},"broker":{…}}</c>.</summary>
    public static void WriteServerStats(Utf8JsonWriter w, BrokerServer? server, BrokerSnapshot snapshot)
    {
        w.WriteStartObject();
        if (server is not null)
        {
            w.WritePropertyName("server");
            WriteServer(w, server);
        }

        w.WritePropertyName("broker");
        WriteBrokerTotals(w, snapshot);
        w.WriteEndObject();
    }

    /// <summary>GET /health: <c>{"status":"ok",…}</c>.</summary>
    public static void WriteHealth(Utf8JsonWriter w, BrokerServer? server, BrokerSnapshot snapshot)
    {
        w.WriteStartObject();
        w.WriteString("status", "ok");
        w.WriteString("version", BrokerServer.Version);
        if (server is not null)
        {
            w.WriteString("serverName", server.Options.ServerName);
            w.WriteNumber("connections", server.ConnectionCount);
        }

        w.WriteNumber("topics", snapshot.Topics.Count);
        w.WriteNumber("subscriptions", snapshot.Subscriptions.Count);
        w.WriteNumber("groups", snapshot.Groups.Count);
        w.WriteEndObject();
    }

    private static void WriteTopic(Utf8JsonWriter w, TopicSnapshot t)
    {
        w.WriteStartObject();
        w.WriteString("name", t.Name);
        w.WriteBoolean("persistent", t.Persistent);
        w.WriteNumber("tail", t.Tail);
        w.WriteNumber("head", t.Head);
        w.WriteNumber("published", t.Published);
        w.WriteNumber("publishedBytes", t.PublishedBytes);
        w.WriteNumber("expired", t.Expired);
        w.WriteNumber("transientSlotBytes", t.TransientSlotBytes);
        w.WriteNumber("damagedRecords", t.DamagedRecords);
        if (t.DamagedRecordsAtLeast)
        {
            w.WriteBoolean("damagedRecordsAtLeast", true); // more were met than the 64 counted
        }

        if (t.DamagedRecords > 0)
        {
            w.WriteNumber("firstDamagedOffset", t.FirstDamagedOffset);
        }

        w.WriteEndObject();
    }

    private static void WriteSubscription(Utf8JsonWriter w, SubscriptionSnapshot s)
    {
        w.WriteStartObject();
        w.WriteString("pattern", s.Pattern);
        if (s.DurableName is null)
        {
            w.WriteNull("durableName");
        }
        else
        {
            w.WriteString("durableName", s.DurableName);
        }

        w.WriteNumber("delivered", s.Delivered);
        w.WriteNumber("lag", s.Lag);
        w.WriteNumber("expired", s.Expired);
        w.WriteNumber("filtered", s.Filtered);
        w.WriteNumber("missed", s.Missed);
        w.WriteNumber("transientCopyBytes", s.TransientCopyBytes);
        w.WriteStartObject("positions");
        foreach (var (topic, next) in s.Positions.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            w.WriteNumber(topic, next);
        }

        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteGroup(Utf8JsonWriter w, GroupSnapshot g)
    {
        w.WriteStartObject();
        w.WriteString("topic", g.Topic);
        w.WriteString("group", g.Group);
        w.WriteNumber("members", g.Members);
        w.WriteNumber("ackFloor", g.AckFloor);
        w.WriteNumber("lag", g.Lag);
        w.WriteNumber("ready", g.Ready);
        w.WriteNumber("inFlight", g.InFlight);
        w.WriteNumber("acked", g.Acked);
        w.WriteNumber("redelivered", g.Redelivered);
        w.WriteNumber("deadLettered", g.DeadLettered);
        w.WriteNumber("deadLettersPending", g.DeadLettersPending);
        w.WriteNumber("deadLettersDropped", g.DeadLettersDropped);
        w.WriteNumber("expired", g.Expired);
        w.WriteNumber("feedLoopFailures", g.FeedLoopFailures);
        w.WriteEndObject();
    }

    private static void WriteServer(Utf8JsonWriter w, BrokerServer server)
    {
        w.WriteStartObject();
        w.WriteString("name", server.Options.ServerName);
        w.WriteString("version", BrokerServer.Version);
        w.WriteString("endpoint", server.EndPoint.ToString());
        w.WriteBoolean("tls", server.Options.TlsCertificatePath is not null);
        w.WriteNumber("uptimeMs", (long)server.Uptime.TotalMilliseconds);
        w.WriteNumber("connections", server.ConnectionCount);
        w.WriteNumber("maxConnections", server.Options.MaxConnections);
        w.WriteNumber("maxFrameSize", server.Options.MaxFrameSize);
        w.WriteNumber("connectionsAccepted", server.ConnectionsAccepted);
        w.WriteNumber("protocolErrorCloses", server.ProtocolErrorCloses);
        w.WriteNumber("framesIn", server.FramesIn);
        w.WriteNumber("framesOut", server.FramesOut);
        w.WriteNumber("bytesIn", server.BytesIn);
        w.WriteNumber("bytesOut", server.BytesOut);
        w.WriteNumber("journalerConfirms", server.JournalerConfirms);
        w.WriteNumber("journalerConfirmsShort", server.JournalerConfirmsShort);
        if (server.SocketCompletions is { } completions)
        {
            w.WriteString("socketCompletions", completions);
        }
        else
        {
            w.WriteNull("socketCompletions");
        }
        w.WriteEndObject();
    }

    private static void WriteBrokerTotals(Utf8JsonWriter w, BrokerSnapshot snapshot)
    {
        w.WriteStartObject();
        w.WriteNumber("topics", snapshot.Topics.Count);
        w.WriteNumber("subscriptions", snapshot.Subscriptions.Count);
        w.WriteNumber("groups", snapshot.Groups.Count);
        w.WriteNumber("producers", snapshot.Producers);
        w.WriteNumber("published", snapshot.Topics.Sum(t => t.Published));
        w.WriteNumber("publishedBytes", snapshot.Topics.Sum(t => t.PublishedBytes));
        w.WriteEndObject();
    }
}
