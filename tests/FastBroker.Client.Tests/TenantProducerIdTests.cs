using FastBroker.Client;
using FastBroker.Testing;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A real <c>fastbroker serve</c> with two tokens, each client configured with the same producer id: the other token's
/// client neither fences nor deduplicates the first one's publishes, and after SIGKILL and a start on the same data the
/// first one's window is where it was (a new process with the id continues after its messages, none taken as a duplicate).
/// </summary>
public class TenantProducerIdTests
{
    private const ulong SharedId = 42;
    private static readonly string[] s_tokens = ["--token", "token-a:a.>", "--token", "token-b:b.>"];

    [Fact]
    public async Task Two_tokens_with_one_configured_producer_id_keep_separate_windows_across_a_kill()
    {
        using var dir = new TempDirectory("fastbroker-tenant-producer");
        var serve = await ServeProcess.StartAsync(dir.Path, 0, s_tokens);
        ServeProcess? again = null;
        try
        {
            using var spare = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            spare.Start();
            var other = ((System.Net.IPEndPoint)spare.LocalEndpoint).Port;
            spare.Stop();
            BrokerClientOptions Options(string token) => BrokerClientOptions.Default with
            {
                Endpoints = [serve.Endpoint, $"127.0.0.1:{other}"],
                AuthToken = token,
                ProducerId = SharedId,
                ReconnectTimeout = TimeSpan.FromMinutes(2),
            };

            await using (var a = await BrokerClient.ConnectAsync(Options("token-a")))
            {
                Assert.Equal(0, await a.PublishAsync("a.orders", Bytes("m0")).AsTask().WaitAsync(Deadline));
                await using (var b = await BrokerClient.ConnectAsync(Options("token-b")))
                {
                    Assert.Equal(0, await b.PublishAsync("b.orders", Bytes("b0")).AsTask().WaitAsync(Deadline));
                    Assert.Equal(1, await b.PublishAsync("b.orders", Bytes("b1")).AsTask().WaitAsync(Deadline));
                }

                Assert.Equal(1, await a.PublishAsync("a.orders", Bytes("m1")).AsTask().WaitAsync(Deadline));
            }

            serve.Kill();
            again = await ServeProcess.StartAsync(dir.Path, other, s_tokens);

            // A new process with the id: INIT_PRODUCER answers from A's window, rebuilt from the journal under the same id.
            await using var a2 = await BrokerClient.ConnectAsync(Options("token-a") with { Endpoints = [again.Endpoint] });
            Assert.Equal(2, await a2.PublishAsync("a.orders", Bytes("m2")).AsTask().WaitAsync(Deadline));
            await using var reader = await a2.CreateSubscriptionAsync("a.orders", SubscribeOptions.Default with { Start = SubscribeStart.Earliest });
            Assert.Equal(["m0", "m1", "m2"], (await TakeAsync(reader, 3)).Select(m => Text(m.Payload)));
        }
        finally
        {
            serve.Dispose();
            again?.Dispose();
        }
    }
}
