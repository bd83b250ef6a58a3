using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FastBroker.Replication;
using FastBroker.Server;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A manual promotion whose lease request fails in a way the standby does not expect (here its witness grants a
/// lease of 2^63 - 1 ms, which the witness client cannot represent and throws for) is answered with that failure, and
/// the node stays a standby that can be promoted again. The standby had taken the request up, so nothing withdrew it,
/// and the exception escaped its loop: the supervisor tried again and again, and <c>PromoteAsync</c> (and
/// <c>POST /promote</c>) waited forever. One in-process standby whose peer is down, and a stand-in witness that
/// denies the lease until the test says otherwise.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class PromotionFailureTests(ITestOutputHelper output)
{
    /// <summary>Far below a heartbeat interval (the supervisor's pause after a failure), far above a promotion.</summary>
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_promotion_whose_epoch_step_fails_answers_the_failure_and_the_node_can_be_promoted_again()
    {
        using var dir = new TempDirectory();
        using var witness = new StandInWitness();
        var lines = new ConcurrentQueue<string>();
        var node = await ReplicatedNode.StartAsync(BrokerOptions.Default, ServerOptions.Default with { Port = 0 }, new ReplicationOptions
        {
            NodeId = "b",
            DataDirectory = dir.Combine("b"),
            Port = FreePort.Next(),
            Peer = Cli.Address(FreePort.Next()), // nothing listens there: the peer is down
            Witness = witness.Endpoint,
            InitialRole = NodeRole.Standby,
            HeartbeatInterval = TimeSpan.FromSeconds(60), // the supervisor's pause after a failure
            HeartbeatTimeout = TimeSpan.FromSeconds(120), // no lease request of its own meanwhile
            LeaseTtl = TimeSpan.FromSeconds(30),
            PromoteAnswerTimeout = TimeSpan.FromSeconds(15),
            Log = lines.Enqueue,
        });
        await using (node)
        {
            var admin = await node.StartAdminAsync("127.0.0.1", 0);
            await using (admin)
            {
                Assert.True(await node.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30)), $"b becomes standby:\n{string.Join('\n', lines)}");
                witness.Answer = StandInWitness.Unrepresentable;

                var promotion = node.PromoteAsync();
                var first = await Task.WhenAny(promotion, Task.Delay(s_deadline));
                Assert.True(first == promotion, $"PromoteAsync did not complete within {s_deadline.TotalSeconds:0} s:\n{string.Join('\n', lines)}");
                var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => promotion);
                output.WriteLine($"PromoteAsync: {failure.Message}");
                Assert.Contains("the promotion failed", failure.Message, StringComparison.Ordinal);
                Assert.Equal(NodeRole.Standby, node.Role);

                // Over HTTP: 409 with the reason, not 202 (under way) nor a request that never ends.
                using var http = new HttpClient { Timeout = s_deadline * 2 };
                using (var response = await http.PostAsync(new Uri($"http://{admin.EndPoint}/promote"), null))
                {
                    var body = await response.Content.ReadAsStringAsync();
                    output.WriteLine($"POST /promote: {(int)response.StatusCode} {body.Trim()}");
                    Assert.True(response.StatusCode == HttpStatusCode.Conflict && body.Contains("the promotion failed", StringComparison.Ordinal), $"POST /promote: {(int)response.StatusCode} {body}");
                }

                Assert.Equal(NodeRole.Standby, node.Role);

                // The witness grants a lease it can use: promoted.
                witness.Answer = StandInWitness.Grant;
                var epoch = await node.PromoteAsync().WaitAsync(s_deadline);
                Assert.Equal(StandInWitness.GrantedEpoch, epoch);
                Assert.Equal(NodeRole.Primary, node.Role);
                Assert.NotNull(node.Server);
            }
        }
    }

    /// <summary>
    /// Answers the witness protocol's requests, one line each: ACQUIRE by <see cref="Answer"/> (by default denied: 'a'
    /// holds the lease), STATUS that 'a' holds it, RELEASE and STANDBY as done.
    /// </summary>
    private sealed class StandInWitness : IDisposable
    {
        public const long GrantedEpoch = 7;

        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly ConcurrentQueue<Socket> _accepted = new();
        private readonly Thread _acceptor;

        public StandInWitness()
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(16);
            _acceptor = new Thread(Accept) { IsBackground = true, Name = "stand-in witness" };
            _acceptor.Start();
        }

        public static Func<string, string> Deny { get; } = _ => "DENIED a 1 5000";

        /// <summary>A grant whose TTL (2^63 - 1 ms) no TimeSpan holds.</summary>
        public static Func<string, string> Unrepresentable { get; } = _ => $"GRANTED {GrantedEpoch} {long.MaxValue}";

        /// <summary>The lease for the TTL asked for.</summary>
        public static Func<string, string> Grant { get; } = ttl => $"GRANTED {GrantedEpoch} {ttl}";

        public string Endpoint => ((IPEndPoint)_listener.LocalEndPoint!).ToString();

        /// <summary>The answer to an ACQUIRE, from the TTL it asks for (ms).</summary>
        public volatile Func<string, string> Answer = Deny;

        public void Dispose()
        {
            _listener.Dispose();
            _acceptor.Join();
            foreach (var s in _accepted)
            {
                s.Dispose();
            }
        }

        private void Accept()
        {
            while (true)
            {
                Socket connection;
                try
                {
                    connection = _listener.Accept();
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                _accepted.Enqueue(connection);
                _ = Task.Run(() => Serve(connection));
            }
        }

        private async Task Serve(Socket connection)
        {
            try
            {
                using var stream = new NetworkStream(connection, ownsSocket: false);
                using var reader = new StreamReader(stream, Encoding.ASCII);
                while (await reader.ReadLineAsync() is { } line)
                {
                    var f = line.Split(' ');
                    var answer = f[0] switch
                    {
                        "ACQUIRE" => Answer(f[3]),
                        "STATUS" => "STATUS a 1 5000",
                        "RELEASE" => "RELEASED",
                        "STANDBY" => "STANDBY " + (f.Length > 3 && f[3] == "behind" ? "behind" : "in-sync"),
                        _ => "ERROR unknown request",
                    };
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(answer + "\n"));
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
            }
        }
    }
}
