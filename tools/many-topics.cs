// What many quiet persistent topics cost: opens an embedded broker, creates N topics (default options: 64 MiB
// segments), publishes one 100-byte message to each, closes it, and prints the time of each phase and the disk used.
// Usage: dotnet run -c Release tools/many-topics.cs -- [topics=40] [directory=/tmp/fb-many-topics]
// (deletes the directory first and after).
#:project ../src/FastBroker.Broker/FastBroker.Broker.csproj
#:property TargetFramework=net10.0
using System.Diagnostics;
using FastBroker;

var n = args.Length > 0 ? int.Parse(args[0]) : 40;
var dir = args.Length > 1 ? args[1] : "/tmp/fb-many-topics";
if (Directory.Exists(dir))
{
    Directory.Delete(dir, recursive: true);
}

var sw = Stopwatch.StartNew();
var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir });
var open = sw.Elapsed.TotalMilliseconds;
sw.Restart();
for (var i = 0; i < n; i++)
{
    broker.CreateTopic($"t{i}");
    await broker.PublishAsync($"t{i}", new byte[100]);
}

var create = sw.Elapsed.TotalMilliseconds;
sw.Restart();
await broker.DisposeAsync();
var close = sw.Elapsed.TotalMilliseconds;
var du = Process.Start(new ProcessStartInfo("du", ["-sk", dir]) { RedirectStandardOutput = true })!;
var usedKiB = long.Parse(du.StandardOutput.ReadToEnd().Split('\t')[0]);
du.WaitForExit();
Console.WriteLine($"{{\"topics\":{n},\"openMs\":{open:F0},\"createAndPublishMs\":{create:F0},\"closeMs\":{close:F0},\"diskMiB\":{usedKiB / 1024}}}");
Directory.Delete(dir, recursive: true);
