using System.Buffers;
using System.Net.Sockets;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>
/// Connections that have not said HELLO (nobody knows who they are yet): they must not hold a connection slot for
/// longer than a handshake takes, nor keep well-behaved clients out (the security audit's findings).
/// </summary>
public class UnauthenticatedConnectionTests
{
    [Fact]
    public async Task A_connection_that_trickles_its_HELLO_is_closed_at_the_handshake_deadline()
    {
        // 1 byte per 100 ms of a 250-byte HELLO: every byte resets the idle timer, so before the handshake deadline such
        // a peer (or a few thousand of them) held its slot for 25 s, or for ever with a longer HELLO or a slower drip.
        await using var f = await ServerFixture.StartAsync(o => o with { HeartbeatInterval = TimeSpan.FromSeconds(1), HandshakeTimeout = TimeSpan.FromSeconds(2) });
        await using var c = await RawConnection.ConnectAsync(f.EndPoint);
        var hello = new ArrayBufferWriter<byte>();
        FrameWriter.WriteHello(hello, 1, new byte[200], "1.0"u8, RawConnection.AllFeatures, new byte[40]);
        var bytes = hello.WrittenMemory.ToArray();
        using var stop = new CancellationTokenSource();
        var sent = 0;
        var trickle = Task.Run(async () =>
        {
            try
            {
                for (; sent < bytes.Length && !stop.IsCancellationRequested; sent++)
                {
                    await c.SendRawAsync(bytes.AsMemory(sent, 1));
                    await Task.Delay(100, stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        });

        var frames = await c.ReadUntilClosedAsync(TimeSpan.FromSeconds(60));
        await stop.CancelAsync();
        await trickle;
        var error = Assert.Single(frames);
        Assert.True(error.Type == FrameType.Error && error.ErrorCode == ErrorCode.IdleTimeout && error.CloseConnection, $"expected ERROR IdleTimeout with CLOSE, got {error} after {sent} of {bytes.Length} bytes");
        Assert.Contains("HELLO", error.ErrorReason, StringComparison.Ordinal);
        Assert.True(sent < bytes.Length, $"closed only after the whole HELLO was sent ({sent} bytes)");
        await Eventually.TrueAsync(() => f.Server.ConnectionCount == 0, "the trickling connection's slot is free");
    }

    [Fact]
    public async Task Silent_sockets_filling_every_slot_do_not_keep_a_client_out()
    {
        // MaxConnections 2 + the 64 read up to their HELLO: one established client and 65 sockets that never say a word
        // fill every slot. A new client used to be closed at accept without a word until the silent ones timed out.
        await using var f = await ServerFixture.StartAsync(o => o with { MaxConnections = 2 });
        await using var established = await f.ConnectAsync();
        var silent = new List<Socket>();
        try
        {
            for (var i = 0; i < 65; i++)
            {
                var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
                silent.Add(s);
                await s.ConnectAsync(f.EndPoint);
            }

            await Eventually.TrueAsync(() => f.Server.ConnectionCount == 66, $"66 connections open (now {f.Server.ConnectionCount})");

            await using var late = await f.ConnectAsync(); // fails (the server closes it) unless a silent one makes room
            Assert.Equal(FrameType.Pong, (await late.RoundTripAsync()).Last().Type);
            Assert.Equal(FrameType.Pong, (await established.RoundTripAsync()).Last().Type); // an established one is never the one to go
            Assert.True(f.Server.ConnectionCount <= 66, $"{f.Server.ConnectionCount} open: the bound on sockets still holds");
            Assert.Contains(f.Log, l => l.Contains("still in its handshake", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var s in silent)
            {
                s.Dispose();
            }
        }
    }
}
