using System.Text;
using FastBroker.Protocol;
using FastBroker.Server;

namespace FastBroker.ServerTests;

/// <summary>
/// Access tokens separate tenants' durable subscription names and work-queue group names (docs/server.md,
/// "Authentication and access control"), and a token creates a topic through JOIN_GROUP only if it may publish to it.
/// </summary>
public class TokenNameScopeTests
{
    [Fact]
    public async Task Another_tokens_durable_subscription_of_the_same_name_neither_takes_it_over_nor_moves_its_position()
    {
        await using var f = await ServerFixture.StartAsync(TokenScopeTests.TwoTenants);
        f.Broker.CreateTopic("shared.feed");
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("shared.feed", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using var a = await f.ConnectAsync(token: "token-a");
        await using var b = await f.ConnectAsync(token: "token-b");
        await a.SubscribeAsync(1, 1, "shared.feed", 10, durable: "billing");
        Assert.Equal(3, (await a.ReadDeliveriesAsync(3, [])).Count);
        await a.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 3));
        Assert.Equal(FrameType.Ok, (await a.ReadUntilAsync(x => x.RequestId == 2))[^1].Type);

        await b.SubscribeAsync(1, 1, "shared.feed", 10, Protocol.StartKind.Committed, durable: "billing", fallback: Protocol.StartKind.Earliest);
        var others = new List<ServerFrame>();
        var fromStart = await b.ReadDeliveriesAsync(1, others);
        Assert.Equal(0UL, fromStart[0].Offset); // B's "billing" has no commit of its own
        Assert.Contains(others, x => x.Type == FrameType.Ok && x.RequestId == 1);
        await b.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 1));
        Assert.Equal(FrameType.Ok, (await b.ReadUntilAsync(x => x.RequestId == 2))[^1].Type);

        var seenByA = await a.RoundTripAsync();
        Assert.DoesNotContain(seenByA, x => x.Type == FrameType.Error);

        // Each name's position survives a restart on its own.
        await f.RestartAsync(server: TokenScopeTests.TwoTenants);
        await f.Broker.PublishAsync("shared.feed", "m3"u8.ToArray());
        await using var a2 = await f.ConnectAsync(token: "token-a");
        await a2.SubscribeAsync(1, 1, "shared.feed", 10, Protocol.StartKind.Committed, durable: "billing", fallback: Protocol.StartKind.Earliest);
        Assert.Equal(3UL, (await a2.ReadDeliveriesAsync(1, []))[0].Offset);
        await using var b2 = await f.ConnectAsync(token: "token-b");
        await b2.SubscribeAsync(1, 1, "shared.feed", 10, Protocol.StartKind.Committed, durable: "billing", fallback: Protocol.StartKind.Earliest);
        Assert.Equal(1UL, (await b2.ReadDeliveriesAsync(1, []))[0].Offset);
    }

    [Fact]
    public async Task Another_tokens_member_of_a_group_of_the_same_name_gets_a_group_of_its_own()
    {
        await using var f = await ServerFixture.StartAsync(TokenScopeTests.TwoTenants);
        f.Broker.CreateTopic("shared.jobs");
        await using var a = await f.ConnectAsync(token: "token-a");
        await using var b = await f.ConnectAsync(token: "token-b");
        await a.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "workers"u8, "shared.jobs"u8, 10));
        Assert.Equal(FrameType.Ok, (await a.ReadUntilAsync(x => x.RequestId == 1))[^1].Type);
        await b.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "workers"u8, "shared.jobs"u8, 10));
        Assert.Equal(FrameType.Ok, (await b.ReadUntilAsync(x => x.RequestId == 1))[^1].Type);

        for (var i = 0; i < 4; i++)
        {
            await f.Broker.PublishAsync("shared.jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        // Every job to A's group and every job to B's: B's member takes none of A's.
        Assert.Equal(new ulong[] { 0, 1, 2, 3 }, (await a.ReadDeliveriesAsync(4)).Select(d => d.Offset).Order().ToArray());
        Assert.Equal(new ulong[] { 0, 1, 2, 3 }, (await b.ReadDeliveriesAsync(4)).Select(d => d.Offset).Order().ToArray());
    }

    [Fact]
    public async Task A_name_too_long_to_take_the_tenant_prefix_is_refused_with_InvalidName_saying_so()
    {
        await using var f = await ServerFixture.StartAsync(TokenScopeTests.TwoTenants);
        f.Broker.CreateTopic("shared.jobs");
        await using var a = await f.ConnectAsync(token: "token-a");
        await a.SubscribeAsync(1, 1, "shared.jobs", 10, durable: new string('d', 222));
        var refused = (await a.ReadUntilAsync(x => x.RequestId == 1))[^1];
        Assert.Equal(ErrorCode.InvalidName, refused.ErrorCode);
        Assert.Contains("at most 221 characters", refused.ErrorReason, StringComparison.Ordinal);
        await a.SendAsync(w => FrameWriter.WriteJoinGroup(w, 2, 2, Encoding.UTF8.GetBytes(new string('g', 222)), "shared.jobs"u8, 10));
        Assert.Equal(ErrorCode.InvalidName, (await a.ReadUntilAsync(x => x.RequestId == 2))[^1].ErrorCode);
        await a.SendAsync(w => FrameWriter.WriteJoinGroup(w, 3, 3, Encoding.UTF8.GetBytes(new string('g', 221)), "shared.jobs"u8, 10));
        var joined = (await a.ReadUntilAsync(x => x.RequestId == 3))[^1];
        Assert.True(joined.Type == FrameType.Ok, joined.ToString());
    }

    [Fact]
    public async Task A_token_that_may_not_publish_to_a_topic_cannot_create_it_by_joining_a_group()
    {
        await using var f = await ServerFixture.StartAsync(o => o with
        {
            Tokens =
            [
                new AccessToken("reader", PublishPatterns: [], SubscribePatterns: [">"]),
                new AccessToken("writer", PublishPatterns: ["new.>"], SubscribePatterns: ["new.>"]),
            ],
        });
        f.Broker.CreateTopic("old.jobs");
        await using var reader = await f.ConnectAsync(token: "reader");
        await reader.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "new.jobs"u8, 10));
        var refused = (await reader.ReadUntilAsync(x => x.RequestId == 1))[^1];
        Assert.Equal(ErrorCode.Forbidden, refused.ErrorCode);
        Assert.False(f.Broker.TopicExists("new.jobs"));

        await reader.SendAsync(w => FrameWriter.WriteJoinGroup(w, 2, 2, "g"u8, "old.jobs"u8, 10));
        Assert.Equal(FrameType.Ok, (await reader.ReadUntilAsync(x => x.RequestId == 2))[^1].Type);

        await using var writer = await f.ConnectAsync(token: "writer");
        await writer.SendAsync(w => FrameWriter.WriteJoinGroup(w, 1, 1, "g"u8, "new.jobs"u8, 10));
        Assert.Equal(FrameType.Ok, (await writer.ReadUntilAsync(x => x.RequestId == 1))[^1].Type);
        Assert.True(f.Broker.TopicExists("new.jobs"));
    }

    [Fact]
    public async Task A_token_that_may_not_publish_to_a_topic_cannot_create_it_by_subscribing_to_it()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Tokens = [new AccessToken("reader", PublishPatterns: [], SubscribePatterns: [">"])] });
        f.Broker.CreateTopic("old.feed");
        await using var reader = await f.ConnectAsync(token: "reader");
        await reader.SubscribeAsync(1, 1, "new.feed", 10);
        var refused = (await reader.ReadUntilAsync(x => x.RequestId == 1))[^1];
        Assert.Equal(ErrorCode.Forbidden, refused.ErrorCode);
        Assert.False(f.Broker.TopicExists("new.feed"));

        // An existing topic, a pattern (it creates nothing) and a request-reply inbox stay allowed.
        await reader.SubscribeAsync(2, 2, "old.feed", 10);
        await reader.SubscribeAsync(3, 3, "new.*", 10);
        await reader.SubscribeAsync(4, 4, "_inbox.0123456789abcdef", 10);
        var answers = (await reader.ReadUntilAsync(x => x.RequestId == 4)).Where(x => x.RequestId is 2 or 3 or 4).ToList();
        Assert.All(answers, x => Assert.True(x.Type == FrameType.Ok, x.ToString()));
        Assert.Equal(3, answers.Count);
    }
}
