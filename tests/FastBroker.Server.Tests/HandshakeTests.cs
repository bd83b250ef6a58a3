using System.Text;
using FastBroker.Protocol;
using FastBroker.Server;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class HandshakeTests
{
    [Fact]
    public async Task Hello_gets_welcome_with_version_limits_and_the_feature_intersection()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { HeartbeatInterval = TimeSpan.FromSeconds(7), MaxSubscriptionsPerConnection = 33, ServerName = "unit" });
        await using var c = await RawConnection.ConnectAsync(f.EndPoint);
        var asked = ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues | (ProtocolFeatures)(1UL << 40);
        await c.SendAsync(w => FrameWriter.WriteHello(w, 42, "t"u8, "1"u8, asked, minVersion: 1, maxVersion: 3));

        var welcome = await c.ReadAsync();

        Assert.Equal(FrameType.Welcome, welcome.Type);
        Assert.Equal(42UL, welcome.RequestId);
        var w = welcome.Welcome!;
        Assert.Equal(1, w.Version);
        Assert.Equal(ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues, w.Features);
        Assert.Equal((uint)ProtocolConstants.DefaultMaxFrameSize, w.MaxFrameSize);
        Assert.Equal(33u, w.MaxSubscriptions);
        Assert.Equal(7000u, w.HeartbeatIntervalMs);
        Assert.Equal("unit", w.ServerName);
        Assert.Equal(BrokerServer.Version, w.ServerVersion);
        Assert.NotEqual(0UL, w.ConnectionId);
        Assert.Single(await c.RoundTripAsync()); // nothing but the PONG
    }

    [Fact]
    public async Task Ping_is_answered_with_pong_carrying_its_request_id()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.SendAsync(w => FrameWriter.WritePing(w, 777));
        var pong = await c.ReadAsync();
        Assert.Equal(FrameType.Pong, pong.Type);
        Assert.Equal(777UL, pong.RequestId);
    }

    [Fact]
    public async Task A_version_range_without_1_gets_UnsupportedVersion_and_close()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await RawConnection.ConnectAsync(f.EndPoint);
        await c.SendAsync(w => FrameWriter.WriteHello(w, 5, "t"u8, "1"u8, ProtocolFeatures.None, minVersion: 2, maxVersion: 3));
        var error = await c.ExpectClosedWithAsync(ErrorCode.UnsupportedVersion);
        Assert.Equal(5UL, error.RequestId);
    }

    [Fact]
    public async Task A_bad_magic_gets_MalformedFrame_and_close()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await RawConnection.ConnectAsync(f.EndPoint);
        var hello = new System.Buffers.ArrayBufferWriter<byte>();
        FrameWriter.WriteHello(hello, 1, "t"u8, "1"u8, ProtocolFeatures.None);
        var bytes = hello.WrittenSpan.ToArray();
        bytes[16] = (byte)'X';
        await c.SendRawAsync(bytes);
        var error = await c.ExpectClosedWithAsync(ErrorCode.MalformedFrame);
        Assert.Equal("HELLO: field 'magic': magic is not \"FBRK\" (46 42 52 4B)", error.ErrorReason);
    }

    [Fact]
    public async Task With_tokens_configured_a_missing_or_wrong_token_gets_AuthenticationFailed_and_a_right_one_gets_in()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { Tokens = [new AccessToken("s3cret"), new AccessToken("other")] });

        await using (var none = await RawConnection.ConnectAsync(f.EndPoint))
        {
            await none.SendAsync(w => FrameWriter.WriteHello(w, 1, "t"u8, "1"u8, ProtocolFeatures.None));
            await none.ExpectClosedWithAsync(ErrorCode.AuthenticationFailed);
        }

        await using (var wrong = await RawConnection.ConnectAsync(f.EndPoint))
        {
            await wrong.SendAsync(w => FrameWriter.WriteHello(w, 1, "t"u8, "1"u8, ProtocolFeatures.None, "s3creT"u8));
            await wrong.ExpectClosedWithAsync(ErrorCode.AuthenticationFailed);
        }

        await using var right = await f.ConnectAsync(token: "s3cret");
        await using var second = await f.ConnectAsync(token: "other");
        await right.PublishAsync(1, "t", "x");
        var confirms = await right.ReadConfirmsAsync([1]);
        Assert.Equal(ErrorCode.None, confirms[1].Status);
    }

    [Fact]
    public async Task Past_MaxConnections_hello_gets_TooManyConnections_and_a_freed_slot_is_reusable()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { MaxConnections = 2 });
        var a = await f.ConnectAsync();
        await using var b = await f.ConnectAsync();

        await using (var c = await RawConnection.ConnectAsync(f.EndPoint))
        {
            await c.SendAsync(w => FrameWriter.WriteHello(w, 9, "t"u8, "1"u8, ProtocolFeatures.None));
            var error = await c.ExpectClosedWithAsync(ErrorCode.TooManyConnections);
            Assert.Equal(9UL, error.RequestId);
        }

        await a.DisposeAsync();
        Eventually.True(() => f.Server.ConnectionCount <= 1, "the closed connections are cleaned up");
        await using var d = await f.ConnectAsync();
        Assert.NotNull(d.Welcome);
    }

    [Fact]
    public async Task A_frame_before_hello_gets_UnexpectedFrame_and_close()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await RawConnection.ConnectAsync(f.EndPoint);
        await c.PublishAsync(3, "t", "too early");
        var error = await c.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
        Assert.Equal(3UL, error.RequestId);
        Assert.Empty(f.Broker.GetSnapshot().Topics);
    }

    [Fact]
    public async Task A_second_hello_gets_UnexpectedFrame_and_close()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.SendAsync(w => FrameWriter.WriteHello(w, 2, "t"u8, "1"u8, ProtocolFeatures.None));
        await c.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
    }

    [Fact]
    public async Task A_silent_connection_is_closed_with_IdleTimeout()
    {
        await using var f = await ServerFixture.StartAsync(o => o with { HeartbeatInterval = TimeSpan.FromMilliseconds(50) });
        await using var c = await f.ConnectAsync();
        Assert.Equal(50u, c.Welcome!.HeartbeatIntervalMs);
        var error = await c.ExpectClosedWithAsync(ErrorCode.IdleTimeout);
        Assert.Equal(0UL, error.RequestId);
    }

    [Fact]
    public async Task Using_a_feature_that_was_not_granted_gets_UnexpectedFrame_and_close()
    {
        await using var f = await ServerFixture.StartAsync();
        await using (var c = await f.ConnectAsync(ProtocolFeatures.Batching))
        {
            await c.SendAsync(w => FrameWriter.WriteJoinGroup(w, 4, 1, "g"u8, "jobs"u8, 10));
            var error = await c.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
            Assert.Contains("WorkQueues", error.ErrorReason, StringComparison.Ordinal);
        }

        await using (var c = await f.ConnectAsync(ProtocolFeatures.None))
        {
            await c.SendAsync(w => FrameWriter.WriteAdmin(w, 5, AdminQuery.ServerStats));
            await c.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
        }

        await using (var c = await f.ConnectAsync(ProtocolFeatures.None))
        {
            await c.SubscribeAsync(6, 1, "t", 1, filters: Headers.Of(("a", "b")));
            await c.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
        }

        await using (var c = await f.ConnectAsync(ProtocolFeatures.None))
        {
            await c.PublishAsync(7, "t", "x", producerId: 99);
            await c.ExpectClosedWithAsync(ErrorCode.UnexpectedFrame);
        }

        Assert.Empty(f.Failures);
    }

    /// <summary>
    /// WELCOME tells a client whether SUBSCRIBE's fallbackKind applies to an Offset start (OffsetFallback, which the
    /// .NET client's reply inbox relies on across a server restart): granted when asked for, as every feature. A client
    /// that predates it (a HELLO without the bit) is welcomed as before and gets the rule it knows: an Offset start past
    /// a concrete topic's head starts at the head whatever its fallbackKind; the client that asked starts at the
    /// earliest message, the OK naming it.
    /// </summary>
    [Fact]
    public async Task OffsetFallback_is_granted_when_asked_and_an_old_hello_without_it_keeps_the_head_start_past_the_head()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("renumbered", Encoding.UTF8.GetBytes($"m{i}"));
        }

        await using (var old = await RawConnection.OpenAsync(f.EndPoint, RawConnection.AllFeatures))
        {
            Assert.Equal(RawConnection.AllFeatures, old.Welcome!.Features);
            await old.SubscribeAsync(2, 1, "renumbered", 10, Protocol.StartKind.Offset, startValue: 10, fallback: Protocol.StartKind.Earliest);
            var ok = await old.ReadAsync();
            Assert.Equal((FrameType.Ok, 2UL, 3UL), (ok.Type, ok.RequestId, ok.OkValue));
            Assert.Single(await old.RoundTripAsync()); // no delivery: only the PONG
        }

        await using var asking = await RawConnection.OpenAsync(f.EndPoint, RawConnection.AllFeatures | ProtocolFeatures.OffsetFallback);
        Assert.Equal(RawConnection.AllFeatures | ProtocolFeatures.OffsetFallback, asking.Welcome!.Features);
        await asking.SubscribeAsync(2, 1, "renumbered", 10, Protocol.StartKind.Offset, startValue: 10, fallback: Protocol.StartKind.Earliest);
        var earliest = await asking.ReadAsync();
        Assert.Equal((FrameType.Ok, 2UL, 0UL), (earliest.Type, earliest.RequestId, earliest.OkValue));
        Assert.Equal(new[] { "m0", "m1", "m2" }, (await asking.ReadDeliveriesAsync(3)).Select(d => d.Text));
    }
}
