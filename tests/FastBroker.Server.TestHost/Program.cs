using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using FastBroker;
using FastBroker.Server;

// Usage: FastBroker.Server.TestHost <dataDir> [port] [--token <token>] [--heartbeat-ms <ms>] [--no-auto-create]
// Opens a broker on <dataDir>, serves it on 127.0.0.1:<port> (0 or absent = a free port) and prints
//   LISTENING <port>
// then runs until stdin closes or SIGTERM/SIGINT, stops gracefully and prints STOPPED. Crash tests kill it with
// SIGKILL instead and start it again on the same port and directory.
var dir = args.Length > 0 ? args[0] : throw new ArgumentException("usage: <dataDir> [port] [--token t] [--heartbeat-ms n] [--no-auto-create]");
var port = args.Length > 1 && !args[1].StartsWith("--", StringComparison.Ordinal) ? int.Parse(args[1], CultureInfo.InvariantCulture) : 0;
string? token = null;
var heartbeat = TimeSpan.FromSeconds(10);
var autoCreate = true;
for (var i = 1; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--token":
            token = args[++i];
            break;
        case "--heartbeat-ms":
            heartbeat = TimeSpan.FromMilliseconds(int.Parse(args[++i], CultureInfo.InvariantCulture));
            break;
        case "--no-auto-create":
            autoCreate = false;
            break;
        default:
            break;
    }
}

var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = true };
using var stop = new CancellationTokenSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
{
    c.Cancel = true;
    stop.Cancel();
});
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
{
    c.Cancel = true;
    stop.Cancel();
});

await using var broker = await Broker.OpenAsync(BrokerOptions.Default with
{
    DataDirectory = dir,
    AutoCreateTopics = autoCreate,
    DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 4 << 20 },
});
var server = await BrokerServer.StartAsync(broker, ServerOptions.Default with
{
    Host = "127.0.0.1",
    Port = port,
    HeartbeatInterval = heartbeat,
    Tokens = token is null ? [] : [new AccessToken(token)],
    Log = line => Console.Error.WriteLine(line),
});
stdout.WriteLine($"LISTENING {server.EndPoint.Port}");

// stdin closing (the parent went away or said so) is the other way to stop.
var stdinClosed = Task.Run(() =>
{
    using var stdin = Console.OpenStandardInput();
    var buffer = new byte[256];
    while (stdin.Read(buffer, 0, buffer.Length) > 0)
    {
    }
});
try
{
    await stdinClosed.WaitAsync(stop.Token);
}
catch (OperationCanceledException)
{
}

await server.StopAsync(TimeSpan.FromSeconds(5));
stdout.WriteLine("STOPPED");
return 0;
