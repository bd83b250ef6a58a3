// How long a standby takes to become primary with a big journal: two in-process nodes on 127.0.0.1 (no witness), the
// primary writes N 100-byte messages, the standby copies them, the primary stops, and PromoteAsync is timed.
// Usage: dotnet run -c Release tools/promotion-time.cs -- [directory=/tmp/fb-promotion] [messages=12000000] [port=7601]
// (uses ports port and port+1; deletes the directory first and after).
#:project ../src/FastBroker.Replication/FastBroker.Replication.csproj
#:property TargetFramework=net10.0
using System.Diagnostics;
using System.Text.Json;
using FastBroker;
using FastBroker.Replication;
using FastBroker.Server;
var root = args.Length > 0 ? args[0] : "/tmp/fb-promotion";
var n = args.Length > 1 ? long.Parse(args[1]) : 12_000_000;
int pa = args.Length > 2 ? int.Parse(args[2]) : 7601, pb = pa + 1;
if (Directory.Exists(root))
{
    Directory.Delete(root, recursive: true);
}

Directory.CreateDirectory(root);
var bo = BrokerOptions.Default;
var so = ServerOptions.Default with { Port = 0 };
ReplicationOptions Node(string id, int port, int peer, NodeRole role) => new() { NodeId = id, DataDirectory = Path.Combine(root, id), Port = port, Peer = $"127.0.0.1:{peer}", InitialRole = role, AckTimeout = TimeSpan.FromSeconds(60) };
var a = await ReplicatedNode.StartAsync(bo, so, Node("a", pa, pb, NodeRole.Primary));
await a.WaitForRoleAsync(NodeRole.Primary, TimeSpan.FromSeconds(30));
var b = await ReplicatedNode.StartAsync(bo, so, Node("b", pb, pa, NodeRole.Standby));
await b.WaitForRoleAsync(NodeRole.Standby, TimeSpan.FromSeconds(30));
var payload = new byte[100];
var batch = new ReadOnlyMemory<byte>[256];
for (var i = 0; i < batch.Length; i++)
{
    batch[i] = payload;
}

for (long i = 0; i < n; i += batch.Length)
{
    while (!a.Broker!.TryPublishBatch("big.topic", batch))
    {
        Thread.Sleep(0);
    }
}

await a.Broker!.PublishAsync("big.topic", payload);
var sw = Stopwatch.StartNew();
while (sw.Elapsed < TimeSpan.FromMinutes(10))
{
    using var doc = JsonDocument.Parse(a.GetStatusJson());
    if (doc.RootElement.TryGetProperty("standby", out var s) && s.TryGetProperty("topics", out var ts)
        && ts.EnumerateArray().Any(t => t.GetProperty("topic").GetString() == "big.topic" && t.GetProperty("durable").GetInt64() == t.GetProperty("head").GetInt64() && t.GetProperty("head").GetInt64() > n))
    {
        break;
    }

    await Task.Delay(100);
}
Console.WriteLine($"standby caught up {sw.Elapsed.TotalSeconds:F1} s after the last publish; journal {Directory.EnumerateFiles(Path.Combine(root, "b"), "*.seg", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) >> 20} MiB");
await a.DisposeAsync();
await Task.Delay(2000); // the standby sees the link go down first, as after a real crash
sw.Restart();
await b.PromoteAsync();
Console.WriteLine($"PromoteAsync: {sw.Elapsed.TotalMilliseconds:F0} ms; role {b.Role}");
await b.DisposeAsync();
Directory.Delete(root, recursive: true);
