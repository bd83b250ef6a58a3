using System.Globalization;
using System.Text;

namespace FastBroker.Server.Internal;

/// <summary>
/// Renders a <see cref="BrokerSnapshot"/> and the server's counters in the Prometheus text exposition format 0.0.4
/// (<c># HELP</c>, <c># TYPE</c>, then <c>name{label="value"} number</c> lines).
/// </summary>
internal static class PrometheusFormatter
{
    public static string Format(BrokerSnapshot snapshot, BrokerServer? server)
    {
        var sb = new StringBuilder(4096);
        var topics = snapshot.Topics;
        Family(sb, "fastbroker_topic_head_offset", "gauge", "Next offset to be given in the topic (messages ever published).", topics, t => Labels(("topic", t.Name)), t => t.Head);
        Family(sb, "fastbroker_topic_tail_offset", "gauge", "Oldest offset still kept.", topics, t => Labels(("topic", t.Name)), t => t.Tail);
        Family(sb, "fastbroker_topic_published_total", "counter", "Messages accepted since the broker opened.", topics, t => Labels(("topic", t.Name)), t => t.Published);
        Family(sb, "fastbroker_topic_published_bytes_total", "counter", "Payload bytes accepted since the broker opened.", topics, t => Labels(("topic", t.Name)), t => t.PublishedBytes);
        Family(sb, "fastbroker_topic_expired_total", "counter", "Messages that expired before delivery, each counted once however many groups and subscriptions skipped it.", topics, t => Labels(("topic", t.Name)), t => t.Expired);
        Family(sb, "fastbroker_topic_transient_slot_bytes", "gauge", "A transient topic's ring memory for message contents: its slots' own buffers plus pooled arrays for larger messages it holds (0 for a persistent topic).", topics, t => Labels(("topic", t.Name)), t => t.TransientSlotBytes);

        // Several open subscriptions may share a pattern (one per connection): one series per (pattern, durable), summed.
        // The gauges are of the open subscriptions; the counters also keep what closed ones counted, so they never go
        // down when a subscription closes (Prometheus would read a drop as a counter reset).
        var subscriptions = snapshot.Subscriptions
            .GroupBy(s => (s.Pattern, Durable: s.DurableName ?? ""))
            .OrderBy(g => g.Key.Pattern, StringComparer.Ordinal).ThenBy(g => g.Key.Durable, StringComparer.Ordinal)
            .ToList();
        static string SubLabels(IGrouping<(string Pattern, string Durable), SubscriptionSnapshot> g) => Labels(("pattern", g.Key.Pattern), ("durable", g.Key.Durable));
        Family(sb, "fastbroker_subscriptions", "gauge", "Open subscriptions with this pattern and durable name.", subscriptions, SubLabels, g => g.Count());
        Family(sb, "fastbroker_subscription_lag", "gauge", "Messages not yet delivered (head minus position, summed over the matched topics).", subscriptions, SubLabels, g => g.Sum(s => s.Lag));
        Family(sb, "fastbroker_subscription_transient_copy_bytes", "gauge", "Memory the open subscriptions hold to copy transient messages out of their rings (summed).", subscriptions, SubLabels, g => g.Sum(s => s.TransientCopyBytes));
        var totals = snapshot.SubscriptionTotals;
        static string TotalLabels(SubscriptionTotals t) => Labels(("pattern", t.Pattern), ("durable", t.DurableName ?? ""));
        Family(sb, "fastbroker_subscription_delivered_total", "counter", "Messages delivered by the subscriptions with this pattern and durable name, closed ones included.", totals, TotalLabels, t => t.Delivered);
        Family(sb, "fastbroker_subscription_missed_total", "counter", "Messages lost: falling a whole ring behind (transient topics) or deleted by retention before being read (persistent topics).", totals, TotalLabels, t => t.Missed);
        Family(sb, "fastbroker_subscription_filtered_total", "counter", "Messages skipped by header filters.", totals, TotalLabels, t => t.Filtered);

        var groups = snapshot.Groups;
        static string GroupLabels(GroupSnapshot g) => Labels(("topic", g.Topic), ("group", g.Group));
        Family(sb, "fastbroker_group_members", "gauge", "Members attached to the work-queue group.", groups, GroupLabels, g => g.Members);
        Family(sb, "fastbroker_group_ready", "gauge", "Messages waiting for a member.", groups, GroupLabels, g => g.Ready);
        Family(sb, "fastbroker_group_inflight", "gauge", "Messages delivered and not yet acknowledged.", groups, GroupLabels, g => g.InFlight);
        Family(sb, "fastbroker_group_lag", "gauge", "Head minus ack floor.", groups, GroupLabels, g => g.Lag);
        Family(sb, "fastbroker_group_ack_floor", "gauge", "Every offset below is acknowledged or dead-lettered.", groups, GroupLabels, g => g.AckFloor);
        Family(sb, "fastbroker_group_acked_total", "counter", "Messages acknowledged since the group was loaded.", groups, GroupLabels, g => g.Acked);
        Family(sb, "fastbroker_group_redelivered_total", "counter", "Deliveries returned to the queue (nack, timeout, member left).", groups, GroupLabels, g => g.Redelivered);
        Family(sb, "fastbroker_group_deadlettered_total", "counter", "Messages moved to the dead-letter topic.", groups, GroupLabels, g => g.DeadLettered);
        Family(sb, "fastbroker_group_deadletters_pending", "gauge", "Dead letters not yet stored in the dead-letter topic (its floor waits).", groups, GroupLabels, g => g.DeadLettersPending);
        Family(sb, "fastbroker_group_deadletters_dropped_total", "counter", "Dead letters the dead-letter topic can never store, dropped.", groups, GroupLabels, g => g.DeadLettersDropped);
        Family(sb, "fastbroker_group_expired_total", "counter", "Messages skipped because their TTL had passed.", groups, GroupLabels, g => g.Expired);
        Family(sb, "fastbroker_group_feed_loop_failures_total", "counter", "Times the group's feed loop failed since the broker opened (each logged, limited by text, and run again after a bounded wait); above 0 is a fault to look into in the log.", groups, GroupLabels, g => g.FeedLoopFailures);
        Single(sb, "fastbroker_producers", "gauge", "Idempotent producers with a deduplication window (those that wrote within the producer expiry).", snapshot.Producers);

        if (server is not null)
        {
            Single(sb, "fastbroker_server_connections", "gauge", "Open client connections.", server.ConnectionCount);
            Single(sb, "fastbroker_server_connections_accepted_total", "counter", "Connections accepted since start.", server.ConnectionsAccepted);
            Single(sb, "fastbroker_server_protocol_error_closes_total", "counter", "Connections closed by the server with a protocol error.", server.ProtocolErrorCloses);
            Single(sb, "fastbroker_server_frames_in_total", "counter", "Frames received.", server.FramesIn);
            Single(sb, "fastbroker_server_frames_out_total", "counter", "Frames sent.", server.FramesOut);
            Single(sb, "fastbroker_server_bytes_in_total", "counter", "Bytes of frames received.", server.BytesIn);
            Single(sb, "fastbroker_server_bytes_out_total", "counter", "Bytes of frames sent.", server.BytesOut);
            Single(sb, "fastbroker_server_journaler_confirms_total", "counter", "CONFIRM frames the journaler thread sent itself (no writer wake-up).", server.JournalerConfirms);
            Single(sb, "fastbroker_server_journaler_confirms_short_total", "counter", "Journaler CONFIRM sends the socket took only in part (the writer sent the rest).", server.JournalerConfirmsShort);
        }

        return sb.ToString();
    }

    /// <summary>Escapes a label value: backslash, double quote and line feed (the format's three escapes).</summary>
    internal static string Escape(string value)
    {
        if (value.AsSpan().IndexOfAny("\\\"\n") < 0)
        {
            return value;
        }

        var sb = new StringBuilder(value.Length + 8);
        foreach (var c in value)
        {
            sb.Append(c switch
            {
                '\\' => "\\\\",
                '"' => "\\\"",
                '\n' => "\\n",
                _ => c.ToString(),
            });
        }

        return sb.ToString();
    }

    private static string Labels(params (string Name, string Value)[] labels) =>
        "{" + string.Join(",", labels.Select(l => $"{l.Name}=\"{Escape(l.Value)}\"")) + "}";

    private static void Header(StringBuilder sb, string name, string type, string help) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Family<T>(StringBuilder sb, string name, string type, string help, IEnumerable<T> items, Func<T, string> labels, Func<T, long> value)
    {
        Header(sb, name, type, help);
        foreach (var item in items)
        {
            sb.Append(name).Append(labels(item)).Append(' ').Append(value(item).ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    private static void Single(StringBuilder sb, string name, string type, string help, long value)
    {
        Header(sb, name, type, help);
        sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }
}
