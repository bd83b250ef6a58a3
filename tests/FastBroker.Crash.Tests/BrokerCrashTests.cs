using System.Globalization;
using System.Text;
using FastBroker.Testing;
using Xunit.Abstractions;

namespace FastBroker.Crash.Tests;

/// <summary>
/// kill -9 of a process hosting the embedded broker mid-stream (publishing, a durable subscription committing, a
/// work-queue member acking), then reopen in this process and check what survived.
/// </summary>
public class BrokerCrashTests(ITestOutputHelper output)
{
    private static int Rounds =>
        int.TryParse(Environment.GetEnvironmentVariable("FASTBROKER_SOAK_ROUNDS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 4;

    internal static string HostPath => Path.Combine(AppContext.BaseDirectory, "FastBroker.Broker.CrashHost.dll");

    [Fact]
    public async Task Kill9_mid_stream_keeps_confirmed_messages_durable_positions_and_unacked_work()
    {
        Assert.True(File.Exists(HostPath), $"crash host not built next to the tests: {HostPath}");
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"seed {seed}, {Rounds} rounds");
        for (var round = 0; round < Rounds; round++)
        {
            using var dir = new TempDirectory("fastbroker-broker-crash");
            var confirmed = new Dictionary<long, string>();
            long committed = 0;
            var attempted = new HashSet<long>();
            var acked = new HashSet<long>();
            using (var child = ChildProcess.StartDotnet(HostPath, dir.Path))
            {
                var target = 200 + random.Next(0, 3000);
                Eventually.True(() => child.LineCount > target || child.HasExited, $"round {round}: child confirms {target} lines");
                Assert.False(child.HasExited, $"round {round}: child exited early: {child.Errors}");
                child.Kill();
                foreach (var line in child.Lines)
                {
                    var parts = line.Split(' ');
                    switch (parts[0])
                    {
                        case "C":
                            confirmed[long.Parse(parts[1], CultureInfo.InvariantCulture)] = parts[2];
                            break;
                        case "S":
                            committed = Math.Max(committed, long.Parse(parts[1], CultureInfo.InvariantCulture));
                            break;
                        case "P":
                            attempted.Add(long.Parse(parts[1], CultureInfo.InvariantCulture));
                            break;
                        case "A":
                            acked.Add(long.Parse(parts[1], CultureInfo.InvariantCulture));
                            break;
                        case "FAULT":
                            Assert.Fail($"round {round}: child faulted: {line}");
                            break;
                        default:
                            break;
                    }
                }
            }

            Assert.NotEmpty(confirmed);
            await using var broker = await Broker.OpenAsync(BrokerOptions.Default with
            {
                DataDirectory = dir.Path,
                DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 4096 },
            });
            var head = broker.GetSnapshot().Topics.Single(t => t.Name == "crash").Head;

            // 1. Every confirmed message is there, at its offset, with its payload; offsets are dense.
            using (var all = broker.Subscribe("crash", new SubscriptionOptions { Start = StartPosition.Earliest }))
            {
                var seen = Drain(all, head);
                Assert.Equal(head, seen.Count);
                for (var i = 0; i < seen.Count; i++)
                {
                    Assert.Equal(i, seen[i].Offset);
                }

                foreach (var (offset, payload) in confirmed)
                {
                    Assert.True(offset < head, $"round {round}: confirmed offset {offset} missing (head {head})");
                    Assert.Equal(payload, seen[(int)offset].Payload);
                }
            }

            // 2. The durable subscription resumes at (or past) what it committed before the kill.
            using (var audit = broker.Subscribe("crash", new SubscriptionOptions { DurableName = "audit", Start = StartPosition.Committed }))
            {
                var resumed = audit.CommittedOffset("crash") ?? 0;
                Assert.True(resumed >= committed, $"round {round}: durable position {resumed} < last committed {committed}");
                var rest = Drain(audit, head - resumed);
                Assert.Equal(head - resumed, rest.Count);
                if (rest.Count > 0)
                {
                    Assert.Equal(resumed, rest[0].Offset);
                }
            }

            // 3. The group redelivers exactly the unacked: never an acked one, always every one not even attempted.
            var member = broker.JoinGroup("crash", "workers", GroupOptions.Default with { Prefetch = 1024 });
            var redelivered = new HashSet<long>();
            var expectedAtLeast = Enumerable.Range(0, (int)head).Select(i => (long)i).Where(o => !attempted.Contains(o)).ToHashSet();
            var handler = new Recorder(new List<(long, string)>());
            Eventually.True(() =>
            {
                handler.Items.Clear();
                member.Fetch(1024, ref handler);
                foreach (var (o, _) in handler.Items)
                {
                    Assert.True(redelivered.Add(o), $"round {round}: offset {o} delivered twice after restart");
                    member.Ack(o, 1);
                }

                return expectedAtLeast.IsSubsetOf(redelivered);
            }, $"round {round}: every offset never attempted before the kill is delivered");
            Assert.Empty(redelivered.Intersect(acked));
            output.WriteLine($"round {round}: head {head}, {confirmed.Count} confirmed, committed {committed}, {acked.Count} acked, {redelivered.Count} redelivered");
            member.Dispose();
        }
    }

    private static List<(long Offset, string Payload)> Drain(Subscription s, long expected)
    {
        var items = new List<(long, string)>();
        var r = new Recorder(items);
        Eventually.True(() =>
        {
            s.Fetch(4096, ref r);
            return items.Count >= expected;
        }, $"{expected} messages readable");
        return items;
    }

    private readonly struct Recorder(List<(long, string)> items) : IMessageHandler
    {
        public List<(long, string)> Items => items;

        public void OnMessage(scoped in MessageView message) => items.Add((message.Offset, Encoding.UTF8.GetString(message.Payload)));
    }
}
