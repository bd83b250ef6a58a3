using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A manual promotion the caller was told did not happen never happens later: cancelling <c>PromoteAsync</c> (or
/// <c>POST /promote</c> answering 409 when its wait ends) withdraws a request the standby has not taken up yet. Before,
/// the request stayed set, and the standby promoted itself as soon as it looked again. One in-process standby, no
/// witness; its peer is a stand-in that ends every link at once and holds one probe unanswered, so that the standby's
/// loop is busy (it probes its peer after a link failed) while the promotion is asked and cancelled.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class CancelledPromotionTests(ITestOutputHelper output)
{
    private const byte Hello = 1;
    private const byte Probe = 3;

    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_promotion_cancelled_before_the_standby_took_it_up_never_happens()
    {
        Task<long>? promotion = null;
        await RunAsync(
            node =>
            {
                using var cts = new CancellationTokenSource();
                promotion = node.PromoteAsync(cts.Token);
                cts.Cancel();
                return "PromoteAsync cancelled";
            },
            options => options,
            async () =>
            {
                var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => promotion!);
                output.WriteLine($"PromoteAsync: {error.GetType().Name}");
            });
    }

    [Fact]
    public async Task A_promotion_POST_answered_409_at_its_timeout_never_happens()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string admin = "";
        AdminHttpServer? server = null;
        (HttpStatusCode Code, string Body) answer = (0, "");
        await RunAsync(
            node =>
            {
                using var response = http.Send(new HttpRequestMessage(HttpMethod.Post, new Uri($"http://{admin}/promote")));
                answer = (response.StatusCode, response.Content.ReadAsStringAsync().GetAwaiter().GetResult());
                return $"POST /promote answered {(int)answer.Code}";
            },
            // The probe the stand-in holds waits up to 4 s (two heartbeat intervals) instead of 500 ms, so that a POST
            // slowed by a loaded machine still arrives while the standby's loop is busy with it.
            options => options with { PromoteAnswerTimeout = TimeSpan.FromMilliseconds(50), ProbeTimeoutLimit = TimeSpan.FromSeconds(10) },
            () =>
            {
                output.WriteLine($"POST /promote: {(int)answer.Code} {answer.Body.Trim()}");
                Assert.Equal(HttpStatusCode.Conflict, answer.Code);
                Assert.Contains("\"promoted\":false", answer.Body, StringComparison.Ordinal);
                return Task.CompletedTask;
            },
            async node =>
            {
                server = await node.StartAdminAsync("127.0.0.1", 0);
                admin = server.EndPoint.ToString();

                // Warm: the POST must reach the node while the standby's probe waits.
                using var warm = http.Send(new HttpRequestMessage(HttpMethod.Get, new Uri($"http://{admin}/status")));
            });
        await server!.DisposeAsync();
    }

    /// <summary>
    /// Starts the standby with its stand-in peer; calls <paramref name="promote"/> (on the peer's thread) while the
    /// standby's probe of it waits; then <paramref name="checkAnswer"/>; then requires that the standby follows its
    /// peer again (a new hello) and never becomes primary.
    /// </summary>
    private async Task RunAsync(
        Func<ReplicatedNode, string> promote,
        Func<ReplicationOptions, ReplicationOptions> configure,
        Func<Task> checkAnswer,
        Func<ReplicatedNode, Task>? started = null)
    {
        using var dir = new TempDirectory();
        var lines = new ConcurrentQueue<string>();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var nodeReady = new TaskCompletionSource<ReplicatedNode>(TaskCreationOptions.RunContinuationsAsynchronously);
        var promoted = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var helloAfter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var peer = new Thread(() => StandIn(listener, () => nodeReady.Task.IsCompleted, () => promote(nodeReady.Task.Result), promoted, helloAfter)) { IsBackground = true, Name = "stand-in peer" };
        peer.Start();

        // A 2 s interval: the standby tries its peer again every second; a 60 s timeout: nothing times out meanwhile.
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, configure(new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = ((IPEndPoint)listener.LocalEndPoint!).ToString(),
            InitialRole = NodeRole.Standby,
            HeartbeatInterval = TimeSpan.FromSeconds(2),
            HeartbeatTimeout = TimeSpan.FromSeconds(60),
            Log = lines.Enqueue,
        }));
        await using (node)
        {
            if (started is not null)
            {
                await started(node);
            }

            nodeReady.SetResult(node);
            var what = await promoted.Task.WaitAsync(s_deadline);
            await checkAnswer();

            // The standby must go on following its peer (its next hello), not promote itself.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!helloAfter.Task.IsCompleted && node.Role != NodeRole.Primary && clock.Elapsed < s_deadline)
            {
                await Task.Delay(10); // polling interval of a condition with a deadline
            }

            Assert.True(
                node.Role == NodeRole.Standby && helloAfter.Task.IsCompleted,
                $"after '{what}' the node is {node.Role} (epoch {node.Epoch}) and has{(helloAfter.Task.IsCompleted ? "" : " not")} tried to follow its peer again:\n{string.Join('\n', lines)}");
            output.WriteLine($"after '{what}': still standby at epoch {node.Epoch}, following its peer again");
        }

        listener.Dispose();
        peer.Join(TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// Ends every link at once; holds the first probe that comes after a link (the standby's loop waits for it, up to
    /// its 500 ms) while <paramref name="promote"/> runs, then ends it unanswered; reports the hellos after that.
    /// </summary>
    private static void StandIn(Socket listener, Func<bool> ready, Func<string> promote, TaskCompletionSource<string> promoted, TaskCompletionSource helloAfter)
    {
        var hellos = 0;
        var held = false;
        while (true)
        {
            Socket connection;
            try
            {
                connection = listener.Accept();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            using (connection)
            {
                try
                {
                    connection.ReceiveTimeout = 5000;
                    var length = new byte[4];
                    ReadExactly(connection, length);
                    var frame = new byte[BitConverter.ToUInt32(length)];
                    ReadExactly(connection, frame);
                    if (frame[0] == Hello)
                    {
                        hellos++;
                        if (held)
                        {
                            helloAfter.TrySetResult();
                        }
                    }
                    else if (frame[0] == Probe && hellos > 0 && !held && ready() && !(connection.Poll(0, SelectMode.SelectRead) && connection.Available == 0))
                    {
                        // The standby's loop waits for this answer (it has not given up): ask for the promotion now.
                        held = true;
                        try
                        {
                            promoted.TrySetResult(promote());
                        }
                        catch (Exception ex)
                        {
                            promoted.TrySetException(ex);
                        }
                    }
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                }
            }
        }
    }

    private static void ReadExactly(Socket socket, byte[] buffer)
    {
        for (var read = 0; read < buffer.Length;)
        {
            var n = socket.Receive(buffer, read, buffer.Length - read, SocketFlags.None);
            if (n == 0)
            {
                throw new SocketException((int)SocketError.ConnectionReset);
            }

            read += n;
        }
    }
}
