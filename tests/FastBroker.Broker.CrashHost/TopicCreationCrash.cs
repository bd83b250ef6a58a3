using System.Globalization;
using FastBroker;

/// <summary>
/// Mode <c>topics</c>: creates persistent topics "t0", "t1", … one after another until the process is killed, and
/// prints "T &lt;n&gt;" after the creation of "t&lt;n&gt;" returned (the broker acknowledged it).
/// </summary>
public static class TopicCreationCrash
{
    /// <summary>The settings of every topic the host creates (the test checks that each reopens with them).</summary>
    public static TopicOptions Topic { get; } = TopicOptions.Default with { Durability = Durability.Fsynced, SegmentBytes = 1 << 20, MaxMessageBytes = 4096 };

    public static async Task<int> RunAsync(string dir, Action<string> say)
    {
        await using var broker = await Broker.OpenAsync(BrokerOptions.Default with { DataDirectory = dir });
        say("READY");
        for (var n = 0; ; n++)
        {
            broker.CreateTopic("t" + n.ToString(CultureInfo.InvariantCulture), Topic);
            say("T " + n.ToString(CultureInfo.InvariantCulture));
        }
    }
}
