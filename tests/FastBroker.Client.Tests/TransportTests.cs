using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using FastBroker.Client;
using FastBroker.Client.Internal;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// The client's threads: the receive thread that runs the reader loop, a lone publish sent by its caller (the send
/// role shared with the writer loop), and inline completions.
/// </summary>
public class TransportTests
{
    private const string ReceiveThreadName = "fastbroker-client-rx";

    [Fact]
    public async Task Lone_publishes_are_sent_by_their_caller_and_pipelined_ones_by_the_writer_in_order()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        // One at a time: nothing else is in flight, so each goes out on this thread (unless the writer loop happens
        // to hold the send role for a heartbeat, hence "most").
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(i, await client.PublishAsync("direct", Bytes($"m{i}")));
        }

        var direct = client.DirectSends;
        Assert.InRange(direct, 10, 20);

        // Pipelined: the first may go direct, the rest wait for the writer, and the offsets keep call order.
        var tasks = Enumerable.Range(20, 500).Select(i => client.PublishAsync("direct", Bytes($"m{i}")).AsTask()).ToList();
        var offsets = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(Enumerable.Range(20, 500).Select(i => (long)i), offsets);

        // Only a publish made while nothing else is unconfirmed goes direct: the first, and any made after the test
        // thread was preempted long enough for all earlier ones to be confirmed.
        Assert.InRange(client.DirectSends - direct, 0, 100);

        var off = await f.ConnectAsync(o => o with { DirectSend = false });
        for (var i = 0; i < 5; i++)
        {
            await off.PublishAsync("direct", Bytes("x"));
        }

        Assert.Equal(0, off.DirectSends);
    }

    [Fact]
    public async Task A_direct_send_the_kernel_takes_only_part_of_is_finished_by_the_writer_loop()
    {
        await using var server = new StalledServer();
        await using var client = await BrokerClient.ConnectAsync(BrokerClientOptions.Default with { Endpoints = [server.Endpoint], Reconnect = false });

        // The writer loop's first pass (woken when the connection became current) is over: nothing wakes it again
        // (the first heartbeat is 30 s away), so the send role is free for the publish below.
        await EventuallyAsync(() => client.WriterPasses >= 1, "the writer loop ends its first pass");

        // 8 MiB against a peer that is not reading (and a 32 KiB receive buffer): the non-blocking send takes a part,
        // the rest is the writer's, and the server must get one intact frame.
        var payload = new byte[8 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        var publish = client.PublishAsync("big", payload).AsTask();
        Assert.False(publish.IsCompleted);
        server.StartReading();

        var frame = await server.Frame.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(FrameType.PublishBatch, (FrameType)frame[4]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan(16 + 18)));
        Assert.True(frame.AsSpan(frame.Length - payload.Length).SequenceEqual(payload), "the payload arrived intact, in order");
        Assert.Equal(41, await publish.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, client.DirectSendsShort);
        Assert.Equal(0, client.DirectSends); // counts only complete ones
    }

    [Fact]
    public async Task A_direct_sender_stopped_mid_batch_while_the_connection_dies_fails_only_with_Closed()
    {
        Assert.True(TestHooks.Enabled, "the test host turns the client's test hooks on (RuntimeHostConfigurationOption)");
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync(o => o with { Reconnect = false });
        Assert.Equal(0, await client.PublishAsync("stopped", Bytes("warm")));

        // The interleaving a preempted direct sender meets: the writer ends a pass and gives the send role back just as
        // the connection dies; a lone publish takes the role (direct send) and collects a batch holding a second
        // publish; then the connection's teardown fails both publishes while the direct sender still has to encode them.
        // Not disposed: a client thread may still be leaving one of them when the test ends.
        var writer = new Stop();
        var roleTaken = new Stop();
        var collected = new Stop();
        var writerWaits = new ManualResetEventSlim();
        Connection? connection = null;
        client.TestHook = (point, c) =>
        {
            switch (point)
            {
                case TestHookPoint.WriterPassEnded:
                    writer.Here();
                    break;
                case TestHookPoint.DirectSendRoleTaken:
                    roleTaken.Here();
                    break;
                case TestHookPoint.DirectSendBatchCollected:
                    connection = c;
                    collected.Here();
                    break;
                case TestHookPoint.WriterWaitsForSendRole:
                    writerWaits.Set();
                    break;
            }
        };

        Task<long> a, b;
        try
        {
            _ = client.PingAsync().AsTask(); // a writer pass, which stops once it has released the send role
            await writer.ReachedAsync("the writer ended a pass");

            // Alone in flight, so sent by its caller: a thread of its own, since the caller stops in the hook.
            a = Task.Factory.StartNew(() => client.PublishAsync("stopped", Bytes("a")).AsTask(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
            await roleTaken.ReachedAsync("the direct sender took the send role");
            b = client.PublishAsync("stopped", Bytes("b")).AsTask(); // queued behind it; the writer is stopped
            roleTaken.Resume();
            await collected.ReachedAsync("the direct sender collected its batch");
            Assert.Equal(2, connection!.Batch.Count(p => p is not null));

            connection.Abort(new IOException("test: the connection died"));
            writer.Resume();

            // Either the teardown ran and failed B (its awaiter released it: its buffer went back to the pool), or
            // the ending writer waits for the direct sender to give the send role back.
            await EventuallyAsync(() => b.IsCompleted || writerWaits.IsSet, "the teardown failed the publishes or waits for the direct sender");
        }
        finally
        {
            writer.Resume();
            roleTaken.Resume();
            collected.Resume();
        }

        // PublishAsync fails only with the documented kinds: never with what reading a released entry throws.
        var errorA = await Assert.ThrowsAsync<BrokerClientException>(() => a.WaitAsync(Deadline));
        var errorB = await Assert.ThrowsAsync<BrokerClientException>(() => b.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.Closed, errorA.ErrorCode);
        Assert.Equal(ErrorCode.Closed, errorB.ErrorCode);
    }

    [Fact]
    public async Task Inline_completions_run_the_code_after_await_on_the_receive_thread()
    {
        await using var f = await ServerFixture.StartAsync();
        var inline = await f.ConnectAsync(o => o with { InlineCompletions = true });
        var pooled = await f.ConnectAsync();

        Assert.Equal(ReceiveThreadName, await ContinuationThreadAsync(inline));
        Assert.Equal("thread pool", await ContinuationThreadAsync(pooled));
    }

    [Fact]
    public async Task The_reader_loop_runs_on_the_receive_thread_or_without_it_on_the_pool()
    {
        await using var f = await ServerFixture.StartAsync();
        var publisher = await f.ConnectAsync();
        foreach (var receiveThread in new[] { true, false })
        {
            var client = await f.ConnectAsync(o => o with { ReceiveThread = receiveThread });
            var topic = $"rx.{receiveThread}";
            var handler = new ThreadRecorder();
            await client.ConsumeAsync(topic, handler, SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
            await publisher.PublishAsync(topic, Bytes("m"));
            var name = await handler.Thread.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(receiveThread ? ReceiveThreadName : "thread pool", name);
            Assert.Equal(1, await client.PublishAsync(topic, Bytes("m2"))); // confirmations come back either way
        }
    }

    [Fact]
    public async Task With_a_receive_thread_the_socket_stays_blocking_and_out_of_the_runtimes_epoll()
    {
        Assert.True(OperatingSystem.IsLinux(), "reads /proc/self: Linux only, like CI");
        await using var f = await ServerFixture.StartAsync();
        var publisher = await f.ConnectAsync();
        foreach (var receiveThread in new[] { true, false })
        {
            var client = await f.ConnectAsync(o => o with { ReceiveThread = receiveThread });
            var topic = $"epoll.{receiveThread}";

            // Every kind of traffic: a lone (direct) publish, pipelined ones through the writer loop, a flush, a
            // subscription with deliveries, and a big frame.
            await client.PublishAsync(topic, Bytes("lone"));
            await Task.WhenAll(Enumerable.Range(0, 300).Select(i => client.PublishAsync(topic, Bytes($"m{i}")).AsTask())).WaitAsync(TimeSpan.FromSeconds(60));
            await client.PublishAsync(topic, new byte[256 * 1024]);
            await client.FlushAsync().WaitAsync(TimeSpan.FromSeconds(60));
            var received = 0;
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await foreach (var _ in client.SubscribeAsync(topic, SubscribeOptions.Default with { Start = SubscribeStart.Earliest }, deadline.Token))
            {
                if (++received == 50)
                {
                    break;
                }
            }

            await publisher.PublishAsync(topic, Bytes("after"));
            var fd = (int)client.CurrentSocket!.SafeHandle.DangerousGetHandle();
            var nonBlocking = IsNonBlocking(fd);
            var inEpoll = EpollTargets().Contains(fd);
            if (receiveThread)
            {
                Assert.False(nonBlocking, "a receive-thread connection's descriptor stays blocking (no async operation ever ran on it)");
                Assert.False(inEpoll, "a receive-thread connection's socket is in no epoll set of this process: an arrival wakes only the receive thread");
            }
            else
            {
                // The contrast shows the probes work: the runtime's socket engine made it non-blocking and registered it.
                Assert.True(nonBlocking);
                Assert.True(inEpoll);
            }
        }
    }

    /// <summary>O_NONBLOCK of one of this process's descriptors, from /proc/self/fdinfo (flags are octal).</summary>
    private static bool IsNonBlocking(int fd)
    {
        var flags = File.ReadAllLines($"/proc/self/fdinfo/{fd}").Single(l => l.StartsWith("flags:", StringComparison.Ordinal));
        return (Convert.ToInt64(flags["flags:".Length..].Trim(), 8) & 0x800) != 0; // O_NONBLOCK = 04000
    }

    /// <summary>Every descriptor registered in any epoll instance of this process ("tfd:" lines of the epoll fds).</summary>
    private static HashSet<int> EpollTargets()
    {
        var targets = new HashSet<int>();
        foreach (var link in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(link).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }

            if (target != "anon_inode:[eventpoll]")
            {
                continue;
            }

            string[] lines;
            try
            {
                lines = File.ReadAllLines($"/proc/self/fdinfo/{Path.GetFileName(link)}");
            }
            catch (IOException)
            {
                continue;
            }

            foreach (var line in lines.Where(l => l.StartsWith("tfd:", StringComparison.Ordinal)))
            {
                targets.Add(int.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return targets;
    }

    /// <summary>Publishes until one completes asynchronously; the name of the thread its continuation ran on.</summary>
    private static async Task<string> ContinuationThreadAsync(BrokerClient client)
    {
        for (var i = 0; i < 100; i++)
        {
            var confirm = client.PublishAsync("where", Bytes("m"));
            if (confirm.IsCompleted)
            {
                continue; // confirmed before the await: it would continue here
            }

            await confirm.ConfigureAwait(false);
            return Describe(Thread.CurrentThread);
        }

        throw new InvalidOperationException("every publish completed synchronously");
    }

    private static string Describe(Thread thread) => thread.IsThreadPoolThread ? "thread pool" : thread.Name ?? "unnamed";

    private sealed class ThreadRecorder : IClientMessageHandler
    {
        public TaskCompletionSource<string> Thread { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void OnMessage(scoped in ClientMessageView message) => Thread.TrySetResult(Describe(System.Threading.Thread.CurrentThread));
    }

    /// <summary>A place where a client thread stops (the first time it gets there) until the test resumes it.</summary>
    private sealed class Stop
    {
        private readonly ManualResetEventSlim _reached = new();
        private readonly ManualResetEventSlim _resume = new();
        private int _armed = 1;

        /// <summary>Called on the client's thread: the first call waits for <see cref="Resume"/> (at most the deadline).</summary>
        public void Here()
        {
            if (Interlocked.Exchange(ref _armed, 0) == 1)
            {
                _reached.Set();
                _resume.Wait(Deadline);
            }
        }

        public Task ReachedAsync(string what) => EventuallyAsync(() => _reached.IsSet, what);

        public void Resume() => _resume.Set();
    }

    /// <summary>
    /// A peer that completes the handshake (announcing 16 MiB frames), then reads nothing until told to, then reads
    /// one frame whole and confirms its first request with offset 41.
    /// </summary>
    private sealed class StalledServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly TaskCompletionSource _read = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<byte[]> _frame = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _serve;
        private Socket? _socket;

        public StalledServer()
        {
            _listener.Server.ReceiveBufferSize = 32 * 1024; // inherited by the accepted socket
            _listener.Start();
            _serve = Task.Run(ServeAsync);
        }

        public string Endpoint => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

        public Task<byte[]> Frame => _frame.Task;

        public void StartReading() => _read.TrySetResult();

        public async ValueTask DisposeAsync()
        {
            _read.TrySetResult();
            _listener.Stop();
            _socket?.Dispose();
            await _serve.WaitAsync(TimeSpan.FromSeconds(30));
        }

        private async Task ServeAsync()
        {
            try
            {
                var socket = _socket = await _listener.AcceptSocketAsync();
                var hello = await ReadFrameAsync(socket);
                var welcome = new ArrayBufferWriter<byte>();
                FrameWriter.WriteWelcome(welcome, BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(8)), ProtocolConstants.Version, 16 * 1024 * 1024, ProtocolFeatures.IdempotentProducer | ProtocolFeatures.Batching, 7, 64, 60_000, "stalled"u8, "0"u8);
                await socket.SendAsync(welcome.WrittenMemory, SocketFlags.None);
                await _read.Task;
                var frame = await ReadFrameAsync(socket);
                var confirm = new ArrayBufferWriter<byte>();
                FrameWriter.WriteConfirm(confirm, new ConfirmRange(BinaryPrimitives.ReadUInt64LittleEndian(frame.AsSpan(8)), 1, ErrorCode.None, false, 41));
                await socket.SendAsync(confirm.WrittenMemory, SocketFlags.None);
                _frame.TrySetResult(frame);

                // Keep the connection open until the test ends.
                var sink = new byte[4096];
                while (await socket.ReceiveAsync(sink, SocketFlags.None) > 0)
                {
                }
            }
            catch (Exception ex)
            {
                _frame.TrySetException(ex);
            }
        }

        private static async Task<byte[]> ReadFrameAsync(Socket socket)
        {
            var prefix = new byte[4];
            await ReadExactlyAsync(socket, prefix);
            var frame = new byte[4 + BinaryPrimitives.ReadInt32LittleEndian(prefix)];
            prefix.CopyTo(frame, 0);
            await ReadExactlyAsync(socket, frame.AsMemory(4));
            return frame;
        }

        private static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer)
        {
            while (!buffer.IsEmpty)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0)
                {
                    throw new EndOfStreamException();
                }

                buffer = buffer[n..];
            }
        }
    }
}
