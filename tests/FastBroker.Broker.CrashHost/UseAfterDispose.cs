using System.Text;
using FastBroker;

/// <summary>
/// <c>&lt;dataDir&gt; use-after-dispose group|subscription</c>: an embedded application that keeps using a work-queue
/// member or a subscription while and after <c>Broker.DisposeAsync</c> runs. Prints what each call did, then
/// <c>DONE</c>, and exits 0. Using the group's state file or a journal segment after they were unmapped kills the
/// process with SIGSEGV (exit 139) instead, which is why this runs in a child.
/// </summary>
internal static class UseAfterDispose
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(string dir, string scenario, Action<string> say)
    {
        var broker = await Broker.OpenAsync(BrokerOptions.Default with
        {
            DataDirectory = dir,
            DefaultTopicOptions = TopicOptions.Default with { SegmentBytes = 1 << 20, MaxMessageBytes = 4096 },
        });
        for (var i = 0; i < 3; i++)
        {
            await broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"job{i}"));
        }

        switch (scenario)
        {
            case "group":
                await GroupAsync(broker, say);
                break;
            case "subscription":
                await SubscriptionAsync(broker, say);
                break;
            default:
                say("unknown scenario " + scenario);
                return 2;
        }

        say("DONE");
        return 0;
    }

    /// <summary>Ack, nack, fetch and credit on a member whose broker was disposed while it held a delivery.</summary>
    private static async Task GroupAsync(Broker broker, Action<string> say)
    {
        var member = broker.JoinGroup("jobs", "workers", GroupOptions.Default with { Prefetch = 2 });
        var held = new Held();
        using (var cts = new CancellationTokenSource(s_deadline))
        {
            while (member.Fetch(1, ref held) == 0)
            {
                await member.WaitAsync().AsTask().WaitAsync(cts.Token);
            }
        }

        await broker.DisposeAsync();
        say($"ACK {member.Ack(held.Offset, held.DeliveryCount)}");
        say($"NACK {member.Nack(held.Offset, held.DeliveryCount, requeue: false)}");
        say($"FETCH {member.Fetch(10, ref held)}");
        say("CREDIT " + Outcome(() => member.AddPrefetch(1)));
    }

    /// <summary>
    /// A durable subscription's handler holds a message (a span into the journal mapping) while another thread
    /// disposes the broker, then reads it; then the application fetches and asks for its position again.
    /// </summary>
    private static async Task SubscriptionAsync(Broker broker, Action<string> say)
    {
        var sub = broker.Subscribe("jobs", new SubscriptionOptions { Start = StartPosition.Earliest, DurableName = "audit", AutoCommit = true });
        using var inHandler = new ManualResetEventSlim();
        using var disposed = new ManualResetEventSlim();
        var fetcher = new Thread(() =>
        {
            var handler = new HoldFirst(inHandler, disposed);
            var outcome = Outcome(() => sub.Fetch(10, ref handler));
            say($"FETCH-DURING {outcome} {handler.FirstPayload}");
        });
        fetcher.Start();
        if (!inHandler.Wait(s_deadline))
        {
            throw new TimeoutException("the handler was not called");
        }

        await broker.DisposeAsync();
        disposed.Set();
        if (!fetcher.Join(s_deadline))
        {
            throw new TimeoutException("the fetch did not return");
        }

        var again = new HoldFirst(null, null);
        say("FETCH-AFTER " + Outcome(() => sub.Fetch(10, ref again)));
        say("POSITION " + Outcome(() => sub.CommittedOffset("jobs")));
    }

    private static string Outcome<T>(Func<T> call)
    {
        try
        {
            return call()?.ToString() ?? "null";
        }
        catch (Exception e) when (e is ObjectDisposedException or BrokerException)
        {
            return e.GetType().Name;
        }
    }

    private static string Outcome(Action call) => Outcome(() =>
    {
        call();
        return "ok";
    });

    private struct Held : IMessageHandler
    {
        public long Offset;
        public int DeliveryCount;

        public void OnMessage(scoped in MessageView message)
        {
            Offset = message.Offset;
            DeliveryCount = message.DeliveryCount;
        }
    }

    /// <summary>On its first message, waits (holding the message) until the broker is disposed, then reads it.</summary>
    private struct HoldFirst(ManualResetEventSlim? inHandler, ManualResetEventSlim? disposed) : IMessageHandler
    {
        public string? FirstPayload;

        public void OnMessage(scoped in MessageView message)
        {
            if (FirstPayload is not null || inHandler is null || disposed is null)
            {
                return;
            }

            inHandler.Set();
            if (!disposed.Wait(s_deadline))
            {
                throw new TimeoutException("the broker was not disposed");
            }

            FirstPayload = Encoding.UTF8.GetString(message.Payload);
        }
    }
}
