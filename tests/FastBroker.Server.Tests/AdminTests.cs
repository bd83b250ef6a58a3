using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Server.Internal;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class AdminTests
{
    [Fact]
    public async Task Admin_queries_answer_with_json_documents()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        for (var i = 0; i < 3; i++)
        {
            await c.PublishAsync((ulong)(i + 1), "orders.eu", "xyz");
        }

        await c.PublishAsync(4, "other", "x");
        await c.ReadConfirmsAsync([1, 2, 3, 4]);
        await c.SubscribeAsync(5, 1, "orders.*", 0, Protocol.StartKind.Earliest, durable: "audit");
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);
        await c.SendAsync(w => FrameWriter.WriteJoinGroup(w, 6, 2, "workers"u8, "orders.eu"u8, 1));
        Assert.Equal(FrameType.Ok, (await c.ReadUntilAsync(x => x.RequestId == 6))[^1].Type);

        using (var topics = await QueryAsync(c, AdminQuery.ListTopics, "orders.>"))
        {
            var list = topics.RootElement.GetProperty("topics");
            var t = Assert.Single(list.EnumerateArray());
            Assert.Equal("orders.eu", t.GetProperty("name").GetString());
            Assert.Equal(3, t.GetProperty("head").GetInt64());
            Assert.Equal(3, t.GetProperty("published").GetInt64());
            Assert.Equal(9, t.GetProperty("publishedBytes").GetInt64());
            Assert.True(t.GetProperty("persistent").GetBoolean());
        }

        using (var stats = await QueryAsync(c, AdminQuery.TopicStats, "orders.eu"))
        {
            Assert.Equal("orders.eu", stats.RootElement.GetProperty("topic").GetProperty("name").GetString());
            var sub = Assert.Single(stats.RootElement.GetProperty("subscriptions").EnumerateArray());
            Assert.Equal("audit", sub.GetProperty("durableName").GetString());
            Assert.Equal(3, sub.GetProperty("lag").GetInt64());
            Assert.Equal(0, sub.GetProperty("positions").GetProperty("orders.eu").GetInt64());
            var group = Assert.Single(stats.RootElement.GetProperty("groups").EnumerateArray());
            Assert.Equal("workers", group.GetProperty("group").GetString());
        }

        using (var groups = await QueryAsync(c, AdminQuery.ListGroups, ""))
        {
            var g = Assert.Single(groups.RootElement.GetProperty("groups").EnumerateArray());
            Assert.Equal(("orders.eu", 1), (g.GetProperty("topic").GetString(), g.GetProperty("members").GetInt32()));
        }

        using (var server = await QueryAsync(c, AdminQuery.ServerStats, ""))
        {
            var s = server.RootElement.GetProperty("server");
            Assert.Equal(1, s.GetProperty("connections").GetInt32());
            Assert.True(s.GetProperty("framesIn").GetInt64() >= 8);
            Assert.Equal(2, server.RootElement.GetProperty("broker").GetProperty("topics").GetInt32());
        }

        await c.SendAsync(w => FrameWriter.WriteAdmin(w, 50, AdminQuery.TopicStats, "nope"u8));
        Assert.Equal(ErrorCode.UnknownTopic, (await c.ReadUntilAsync(x => x.RequestId == 50))[^1].ErrorCode);
    }

    [Fact]
    public async Task Http_health_metrics_and_404()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        await using var c = await f.ConnectAsync();
        for (var i = 0; i < 3; i++)
        {
            await c.PublishAsync((ulong)(i + 1), "orders", "abcd");
        }

        await c.ReadConfirmsAsync([1, 2, 3]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{admin.EndPoint}/"), Timeout = RawConnection.ReadTimeout };

        var health = await http.GetAsync("health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("application/json", health.Content.Headers.ContentType!.MediaType);
        using (var doc = JsonDocument.Parse(await health.Content.ReadAsStringAsync()))
        {
            Assert.Equal("ok", doc.RootElement.GetProperty("status").GetString());
            Assert.Equal(1, doc.RootElement.GetProperty("connections").GetInt32());
        }

        var metrics = await http.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Equal("text/plain", metrics.Content.Headers.ContentType!.MediaType);
        var text = await metrics.Content.ReadAsStringAsync();
        Assert.Contains("fastbroker_topic_published_total{topic=\"orders\"} 3\n", text, StringComparison.Ordinal);
        Assert.Contains("fastbroker_topic_head_offset{topic=\"orders\"} 3\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE fastbroker_topic_published_total counter\n", text, StringComparison.Ordinal);
        Assert.Contains("fastbroker_server_connections 1\n", text, StringComparison.Ordinal);
        Assert.Matches(@"fastbroker_server_frames_in_total [1-9]\d*\n", text);

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("nope")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.PostAsync("metrics", new StringContent(""))).StatusCode);
    }

    /// <summary>
    /// A transient topic's ring memory (<c>TopicSnapshot.TransientSlotBytes</c>) and its subscriptions' copy buffers
    /// (<c>SubscriptionSnapshot.TransientCopyBytes</c>) are shown with the other per-topic and per-subscription figures:
    /// as gauges of <c>/metrics</c> and in the topic and subscription documents of ADMIN.
    /// </summary>
    [Fact]
    public async Task Http_metrics_and_admin_documents_show_a_transient_topics_memory()
    {
        const int Capacity = 16;
        await using var f = await ServerFixture.StartAsync();
        var own = Math.Min(f.Broker.Options.DefaultTopicOptions.MaxMessageBytes, f.Broker.Options.InputEntryBytes);
        f.Broker.CreateTopic("live", TopicOptions.Default with { Persistent = false, TransientCapacity = Capacity });
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{admin.EndPoint}/"), Timeout = RawConnection.ReadTimeout };
        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(1, 1, "live", 100);
        Assert.Equal(FrameType.Ok, (await c.ReadAsync()).Type);

        var text = await http.GetStringAsync("metrics");
        Assert.Contains("# TYPE fastbroker_topic_transient_slot_bytes gauge\n", text, StringComparison.Ordinal);
        Assert.Contains($"fastbroker_topic_transient_slot_bytes{{topic=\"live\"}} {Capacity * own}\n", text, StringComparison.Ordinal);
        Assert.Contains($"fastbroker_subscription_transient_copy_bytes{{pattern=\"live\",durable=\"\"}} {own}\n", text, StringComparison.Ordinal);

        // A ring full of large messages holds them (pooled arrays) until it moves past them; the subscription's copy
        // of each goes back once delivered.
        for (var i = 0; i < Capacity; i++)
        {
            await f.Broker.PublishAsync("live", new byte[40_000]);
        }

        Assert.Equal(Capacity, (await c.ReadDeliveriesAsync(Capacity)).Count);
        var held = f.Broker.GetSnapshot().Topics.Single(t => t.Name == "live").TransientSlotBytes;
        Assert.True(held >= Capacity * (own + 40_000L), $"the ring holds {held} bytes");
        text = await http.GetStringAsync("metrics");
        Assert.Contains($"fastbroker_topic_transient_slot_bytes{{topic=\"live\"}} {held}\n", text, StringComparison.Ordinal);
        await Eventually.TrueAsync(() => f.Broker.GetSnapshot().Subscriptions.Sum(s => s.TransientCopyBytes) == own, "the subscription's copy buffer is back to its own once the deliveries are done");
        Assert.Contains($"fastbroker_subscription_transient_copy_bytes{{pattern=\"live\",durable=\"\"}} {own}\n", await http.GetStringAsync("metrics"), StringComparison.Ordinal);

        using (var topics = await QueryAsync(c, AdminQuery.ListTopics, "live"))
        {
            var t = Assert.Single(topics.RootElement.GetProperty("topics").EnumerateArray());
            Assert.Equal(held, t.GetProperty("transientSlotBytes").GetInt64());
        }

        using (var stats = await QueryAsync(c, AdminQuery.TopicStats, "live"))
        {
            Assert.Equal(held, stats.RootElement.GetProperty("topic").GetProperty("transientSlotBytes").GetInt64());
            var sub = Assert.Single(stats.RootElement.GetProperty("subscriptions").EnumerateArray());
            Assert.Equal(own, sub.GetProperty("transientCopyBytes").GetInt64());
        }

        await c.PublishAsync(2, "kept", "x");
        await c.ReadConfirmsAsync([2]);
        Assert.Contains("fastbroker_topic_transient_slot_bytes{topic=\"kept\"} 0\n", await http.GetStringAsync("metrics"), StringComparison.Ordinal);
    }

    /// <summary>
    /// A load balancer's checks, by HTTP code: a lone server serves clients, so it is a primary (200, the /health
    /// document) and never a standby (503, the same document, also with a lag it would be within); a malformed lag is
    /// the caller's mistake (400), as on a failover node.
    /// </summary>
    [Fact]
    public async Task Http_primary_is_200_and_standby_503_on_a_lone_server()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{admin.EndPoint}/"), Timeout = RawConnection.ReadTimeout };
        foreach (var (path, expected) in new[] { ("primary", HttpStatusCode.OK), ("standby", HttpStatusCode.ServiceUnavailable), ("standby?lag=1000", HttpStatusCode.ServiceUnavailable) })
        {
            using var response = await http.GetAsync(path);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == expected, $"GET /{path}: {(int)response.StatusCode} {body}");
            Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
            using var doc = JsonDocument.Parse(body);
            Assert.Equal("ok", doc.RootElement.GetProperty("status").GetString());
            Assert.Equal(f.Server.Options.ServerName, doc.RootElement.GetProperty("serverName").GetString());
        }

        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.PostAsync("primary", new StringContent(""))).StatusCode);

        foreach (var lag in new[] { "64MB", "-1", "", "x", "1&lag=1" })
        {
            using var response = await http.GetAsync($"standby?lag={lag}");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"GET /standby?lag={lag}: {(int)response.StatusCode} {body}");
            Assert.Contains("lag", body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Http_absolute_form_targets_answer_as_their_origin_form()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var admin = await AdminHttpServer.StartAsync(f.Broker, f.Server, "127.0.0.1", 0);
        var authority = admin.EndPoint.ToString();

        // RFC 9112 §3.2.2, what a proxy or a scraper behind one sends: the scheme and authority are not the path.
        var metrics = await RawHttpAsync(admin.EndPoint, $"GET http://{authority}/metrics HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", metrics, StringComparison.Ordinal);
        Assert.Contains("fastbroker_server_connections ", metrics, StringComparison.Ordinal);

        var health = await RawHttpAsync(admin.EndPoint, $"GET HTTP://{authority}/health?verbose=1 HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", health, StringComparison.Ordinal);
        Assert.Contains("\"status\":\"ok\"", health, StringComparison.Ordinal);

        Assert.StartsWith("HTTP/1.1 404 ", await RawHttpAsync(admin.EndPoint, $"GET http://{authority}/nope HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 404 ", await RawHttpAsync(admin.EndPoint, $"GET http://{authority}?x=1 HTTP/1.1\r\n\r\n"), StringComparison.Ordinal);
        Assert.StartsWith("HTTP/1.1 405 ", await RawHttpAsync(admin.EndPoint, $"POST http://{authority}/metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), StringComparison.Ordinal);

        Assert.Equal("/metrics", AdminHttpServer.OriginPath("http://user@[::1]:7401/metrics"));
        Assert.Equal("/?a=b", AdminHttpServer.OriginPath("https://example.org?a=b"));
        Assert.Equal("/", AdminHttpServer.OriginPath("http://example.org"));
        Assert.Equal("/x", AdminHttpServer.OriginPath("/x"));
        Assert.Equal("*", AdminHttpServer.OriginPath("*"));
        Assert.Equal("example.org:80", AdminHttpServer.OriginPath("example.org:80"));
    }

    [Fact]
    public void Label_values_are_escaped()
    {
        Assert.Equal("plain", PrometheusFormatter.Escape("plain"));
        Assert.Equal("a\\\\b\\\"c\\nd", PrometheusFormatter.Escape("a\\b\"c\nd"));
    }

    // One request on a raw socket, the whole answer (the server closes after it).
    private static async Task<string> RawHttpAsync(IPEndPoint endPoint, string request)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(RawConnection.ReadTimeout);
        await socket.ConnectAsync(endPoint, timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, timeout.Token);
        var answer = new MemoryStream();
        var buffer = new byte[4096];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
        {
            answer.Write(buffer, 0, n);
        }

        return Encoding.UTF8.GetString(answer.ToArray());
    }

    [Fact]
    public async Task The_group_document_carries_the_groups_feed_loop_failures()
    {
        await using var f = await ServerFixture.StartAsync();
        using var member = f.Broker.JoinGroup("orders.eu", "workers", GroupOptions.Default);
        var snapshot = f.Broker.GetSnapshot();
        snapshot = snapshot with { Groups = [.. snapshot.Groups.Select(g => g with { FeedLoopFailures = 3 })] };
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            AdminDocuments.WriteGroupList(w, snapshot, null);
        }

        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        var g = Assert.Single(doc.RootElement.GetProperty("groups").EnumerateArray());
        Assert.True(g.TryGetProperty("feedLoopFailures", out var failures), $"no feedLoopFailures in the group document: {g}");
        Assert.Equal(3, failures.GetInt64());
    }

    private static async Task<JsonDocument> QueryAsync(RawConnection c, AdminQuery query, string argument)
    {
        var id = c.NextRequestId();
        await c.SendAsync(w => FrameWriter.WriteAdmin(w, id, query, System.Text.Encoding.UTF8.GetBytes(argument)));
        var frames = await c.ReadUntilAsync(x => x.RequestId == id);
        var result = frames[^1];
        Assert.True(result.Type == FrameType.AdminResult, $"expected ADMIN_RESULT, got {result}");
        Assert.Equal(query, result.AdminQuery);
        return JsonDocument.Parse(result.AdminJson);
    }
}
