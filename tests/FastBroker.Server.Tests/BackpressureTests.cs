using System.Buffers;
using System.Net.Sockets;
using FastBroker.Protocol;
using FastBroker.Server.Internal;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

public class BackpressureTests
{
    [Fact]
    public async Task A_client_that_sends_but_never_reads_is_stopped_reading_instead_of_growing_server_memory()
    {
        await using var f = await ServerFixture.StartAsync();
        using var socket = new Socket(f.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
        {
            NoDelay = true,
            ReceiveBufferSize = 64 * 1024, // a fixed small window: the PONGs back up quickly
        };
        await socket.ConnectAsync(f.EndPoint);
        var hello = new ArrayBufferWriter<byte>();
        FrameWriter.WriteHello(hello, 1, "t"u8, "1"u8, ProtocolFeatures.None);
        await socket.SendAsync(hello.WrittenMemory);

        // 1M PINGs (16 MB), far more than the socket buffers and the server's 1 MiB reply backlog can absorb.
        const int Pings = 1_000_000;
        var chunk = new ArrayBufferWriter<byte>();
        for (var i = 0; i < 10_000; i++)
        {
            FrameWriter.WritePing(chunk, (ulong)i);
        }

        var sender = Task.Run(async () =>
        {
            for (var sent = 0; sent < Pings; sent += 10_000)
            {
                await socket.SendAsync(chunk.WrittenMemory);
            }
        });

        // No round trip has happened (the client never reads): the accept may not have registered the session yet.
        Eventually.True(() => f.Server.Sessions.Any(), "the server registers the connection's session");
        var session = f.Server.Sessions.Single();
        Assert.True(
            Eventually.TryWait(() => session.WaitingForWriter, Eventually.DefaultTimeout),
            $"the reader did not pause within {Eventually.DefaultTimeout.TotalSeconds} s while the client does not read (server log: {string.Join(" | ", f.Log)})");
        Assert.InRange(session.QueuedReplyBytes, 0, (1 << 20) + (64 * 1024));
        Assert.False(sender.IsCompleted);
        Assert.True(f.Server.FramesIn < Pings);

        // Now read: every PING is answered (16-byte PONGs), the sender finishes, nothing was lost.
        var expected = 60L + System.Text.Encoding.UTF8.GetByteCount(FastBroker.Server.BrokerServer.Version) + (16L * Pings); // WELCOME (16 + 32 + str8 "fastbroker" + str8 version) + the PONGs
        var buffer = new byte[1 << 16];
        long received = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (received < expected)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            Assert.True(n > 0, "closed early");
            received += n;
        }

        await Eventually.Completes(sender);
        Assert.Equal(expected, received);
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task A_client_that_stops_reading_and_then_sending_is_disconnected_after_the_idle_timeout()
    {
        // Idle timeout 3 × 300 ms. The connection would otherwise hold its MaxConnections slot until server shutdown.
        await using var f = await ServerFixture.StartAsync(o => o with { HeartbeatInterval = TimeSpan.FromMilliseconds(300) });

        // HELLO, then PINGs whose PONGs are never read: the server's socket fills, the PONGs queue up to the 1 MiB reply
        // bound and its reader waits for the writer; TCP then stops this sender too, and the client sends nothing more.
        await using var connection = await StallingConnection.OpenAsync(f);
        await Eventually.TrueAsync(() => f.Server.Sessions.Length == 1, "the server has the connection");
        var session = f.Server.Sessions[0];
        await Eventually.TrueAsync(() => f.Server.ConnectionCount == 0, "the connection that takes no bytes is closed", TimeSpan.FromSeconds(30));
        Assert.True(session.HasWaitedForWriter, "the reader waited for the writer (the reply backlog was reached)");
        Assert.Contains(f.Log, l => l.Contains("took no bytes", StringComparison.Ordinal));
        await Eventually.Completes(connection.Sender);
        Assert.Empty(f.Failures);
    }

    [Fact]
    public async Task The_acknowledged_byte_count_the_idle_check_reads_is_what_the_client_received()
    {
        Assert.True(OperatingSystem.IsLinux(), "TCP_INFO: Linux only, like CI");
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        await c.RoundTripAsync();
        var session = f.Server.Sessions.Single();

        // WELCOME and a PONG were read by the client: every byte the server counted out is acknowledged.
        ulong acked = 0;
        await Eventually.TrueAsync(() => TcpAcks.TryGet(session.Socket, out acked) && acked >= (ulong)f.Server.BytesOut, "the client's ACKs arrive");
        Assert.InRange(acked, (ulong)f.Server.BytesOut, (ulong)f.Server.BytesOut + 1); // + 1: a kernel may count the SYN
    }

    [Fact]
    public async Task Admin_queries_from_a_client_that_never_reads_stop_at_the_reply_bound()
    {
        await using var f = await ServerFixture.StartAsync();
        for (var i = 0; i < 40; i++)
        {
            f.Broker.CreateTopic($"admin.backlog.topic.{i:D4}", TopicOptions.Default with { Persistent = false });
        }

        using var socket = new Socket(f.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
        {
            NoDelay = true,
            ReceiveBufferSize = 64 * 1024,
        };
        await socket.ConnectAsync(f.EndPoint);
        var frames = new ArrayBufferWriter<byte>();
        FrameWriter.WriteHello(frames, 1, "t"u8, "1"u8, ProtocolFeatures.Admin);

        // 2,000 ADMIN frames of about 20 bytes, each answered with a document of several KB: about 800 fit in one read
        // of the socket, several times the 1 MiB reply bound.
        for (var i = 0; i < 2000; i++)
        {
            FrameWriter.WriteAdmin(frames, (ulong)i + 1, AdminQuery.ListTopics);
        }

        await socket.SendAsync(frames.WrittenMemory);

        // No round trip has happened (the client never reads): the accept may not have registered the session yet.
        Eventually.True(() => f.Server.Sessions.Any(), "the server registers the connection's session");
        var session = f.Server.Sessions.Single();
        Assert.True(
            Eventually.TryWait(() => session.WaitingForWriter, Eventually.DefaultTimeout),
            $"the reader did not pause within {Eventually.DefaultTimeout.TotalSeconds} s while the client does not read (server log: {string.Join(" | ", f.Log)})");
        Assert.InRange(session.QueuedReplyBytes, 0, (1 << 20) + (256 * 1024));
        Assert.Empty(f.Failures);
        socket.Dispose();
        Eventually.True(() => !f.Server.Sessions.Any(), "the session ends with its connection");
    }
}
