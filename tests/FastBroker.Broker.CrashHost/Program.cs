using System.Globalization;
using System.Text;
using FastBroker;

// Usage: FastBroker.Broker.CrashHost <dataDir> [use-after-dispose group|subscription | producers | producer-retention | topics steps|kill <k>
//   | refused <f> steps|kill <k>]
// With use-after-dispose: see UseAfterDispose.cs; with producers: see ProducerCrash.cs; with producer-retention: see ProducerRetentionCrash.cs; with topics: see
// TopicCreationCrash.cs; with refused: see RefusedCreationCrash.cs. Without:
// Publishes "m<offset-hint>" messages to topic "crash" (written durability) with up to 64 outstanding, and prints:
//   C <offset> <payload>   after PublishAsync confirmed the message at that offset
//   S <offset>             after the durable subscription "audit" committed <offset> as its next position
//   P <offset> <count>     before a group member acks a delivery
//   A <offset> <count>     after the ack returned true
// Runs until killed. Output is flushed line by line so the parent sees exactly what was confirmed.
var dir = args[0];
var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = true };
var gate = new object();
void Say(string line)
{
    lock (gate)
    {
        stdout.WriteLine(line);
    }
}

if (args.Length > 2 && args[1] == "use-after-dispose")
{
    return await UseAfterDispose.RunAsync(dir, args[2], Say);
}

if (args.Length > 1 && args[1] == "producers")
{
    return await ProducerCrash.RunAsync(dir, Say);
}

if (args.Length > 1 && args[1] == "producer-retention")
{
    return await ProducerRetentionCrash.RunAsync(dir, Say);
}

if (args.Length > 2 && args[1] == "topics")
{
    return await TopicCreationCrash.RunAsync(dir, args[2], args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : -1, Say);
}

if (args.Length > 3 && args[1] == "refused")
{
    return await RefusedCreationCrash.RunAsync(dir, int.Parse(args[2], CultureInfo.InvariantCulture), args[3], args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : -1, Say);
}

await using var broker = await Broker.OpenAsync(BrokerOptions.Default with
{
    DataDirectory = dir,
    DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 4096 },
});
broker.CreateTopic("crash", TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 4096 });
Say("READY");

var publisher = Task.Run(async () =>
{
    var outstanding = new Queue<(ValueTask<long> Task, string Payload)>();
    for (long i = 0; ; i++)
    {
        var payload = "m" + i.ToString(CultureInfo.InvariantCulture);
        outstanding.Enqueue((broker.PublishAsync("crash", Encoding.UTF8.GetBytes(payload)), payload));
        if (outstanding.Count >= 64)
        {
            var (task, p) = outstanding.Dequeue();
            Say($"C {await task} {p}");
        }
    }
});

var subscriber = Task.Run(async () =>
{
    using var sub = broker.Subscribe("crash", new SubscriptionOptions { DurableName = "audit", Start = StartPosition.Committed });
    var handler = new Count();
    while (true)
    {
        if (sub.Fetch(50, ref handler) == 0)
        {
            await sub.WaitAsync();
            continue;
        }

        sub.Commit();
        Say($"S {sub.CommittedOffset("crash")}");
    }
});

var worker = Task.Run(async () =>
{
    var member = broker.JoinGroup("crash", "workers", GroupOptions.Default with { Prefetch = 16, VisibilityTimeout = TimeSpan.FromSeconds(30) });
    var rng = new Random(Environment.ProcessId);
    await foreach (var m in member.ReadAllAsync())
    {
        if (rng.Next(4) == 0)
        {
            continue; // leave some unacked (in flight at the crash)
        }

        Say($"P {m.Offset} {m.DeliveryCount}");
        if (member.Ack(m))
        {
            Say($"A {m.Offset} {m.DeliveryCount}");
        }
    }
});

await Task.WhenAny(publisher, subscriber, worker);
Say("FAULT " + (publisher.Exception ?? subscriber.Exception ?? worker.Exception)?.ToString().Replace('\n', ' '));
return 1;

internal struct Count : IMessageHandler
{
    public long N;

    public void OnMessage(scoped in MessageView message) => N++;
}
