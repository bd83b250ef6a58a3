using System.Text;
using FastBroker;

/// <summary>
/// Mode <c>producer-retention</c>: an idempotent producer publishes 5 messages to topic "t" (sequences 0 to 4, offsets
/// 0 to 4), then plain publishes fill the topic until its retention has deleted the segment holding them (far fewer
/// records than a producers.state capture interval). Prints "D" then, and waits to be killed.
/// </summary>
public static class ProducerRetentionCrash
{
    public const ulong Producer = 0x7E7E_0000_0000_0002;

    /// <summary>The host's options, and the test's when it opens the directory after the kill.</summary>
    public static BrokerOptions Options(string dir) => BrokerOptions.Default with { DataDirectory = dir };

    /// <summary>64 KiB segments, retention by size at 192 KiB.</summary>
    public static readonly TopicOptions Topic = TopicOptions.Default with
    {
        SegmentBytes = 64 << 10,
        MaxMessageBytes = 16 << 10,
        RetentionBytes = 192 << 10,
    };

    public static async Task<int> RunAsync(string dir, Action<string> say)
    {
        await using var broker = await Broker.OpenAsync(Options(dir));
        broker.CreateTopic("t", Topic);
        var sink = new ProducerCrash.Sink();
        for (var i = 0UL; i < 5; i++)
        {
            Publish(broker, sink, i);
        }

        await sink.WaitForAsync(5);
        Assert(broker.Topics.TryGet("t", out var t), "topic t");
        var journal = t.Journal!;
        for (var n = 0; journal.FirstOffset <= 4; n++)
        {
            if (n < 5000)
            {
                await broker.PublishAsync("t", Encoding.UTF8.GetBytes($"m{n}").Concat(new byte[100]).ToArray());
            }
            else
            {
                journal.ApplyRetention(); // the flusher's pass comes every 5 s: one now, once the segments are sealed
                await Task.Delay(10);
            }
        }

        say("D");
        await Task.Delay(Timeout.Infinite);
        return 0;
    }

    public static void Publish(Broker broker, IPublishConfirmSink sink, ulong sequence)
    {
        PublishClaim claim;
        while (!broker.TryBeginPublish(1, out claim))
        {
            Thread.Yield();
        }

        claim.Add("t"u8, default, default, new System.Buffers.ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"p{sequence}")), new PublishParameters(ProducerId: Producer, ProducerSequence: sequence), sink, sequence);
        claim.Commit();
    }

    private static void Assert(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException(what);
        }
    }
}
