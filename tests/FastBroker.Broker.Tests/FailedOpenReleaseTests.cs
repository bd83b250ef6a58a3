using System.Runtime.Versioning;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// An open that fails after it opened the topics (a recovery step that cannot read a file of the data directory, a
/// thread or the timer that cannot start) closes every journal it opened and stops what it started before it throws.
/// Before, only the directory's lock was released: the journals stayed mapped and their descriptors open in the
/// process, and each one's <c>journal.lock</c> flock refused the next open of the same directory in this process (a
/// failover node or an embedding application retrying), while each failed attempt leaked more.
/// </summary>
[UnsupportedOSPlatform("windows")] // /proc/self; the broker runs on Linux
public class FailedOpenReleaseTests
{
    private const int Messages = 5;

    /// <summary>
    /// <c>producers.epochs</c> that is a directory: the producers' recovery (after the topics are open) cannot read it,
    /// and refuses the open (without it a replaced producer instance would not be fenced: ProducerFileUnreadableTests).
    /// </summary>
    [Fact]
    public async Task An_open_that_a_recovery_step_fails_closes_the_journals_it_opened_and_the_next_open_sees_the_messages()
    {
        using var dir = new TempDirectory("fastbroker-failed-open");
        await PublishAndCloseAsync(dir.Path);
        var epochs = dir.Combine(ProducerEpochFile.FileName);
        File.Delete(epochs);
        Directory.CreateDirectory(epochs);

        var e = await Assert.ThrowsAnyAsync<Exception>(async () => await (await Broker.OpenAsync(BrokerFixture.Options(dir.Path))).DisposeAsync());
        Assert.Contains(ProducerEpochFile.FileName, e.Message, StringComparison.Ordinal);
        AssertReleased(dir.Path);

        Directory.Delete(epochs);
        await ReopensWithMessagesAsync(dir.Path);
    }

    /// <summary>
    /// A failure once the broker is built, after its journaler thread and timer started (a seam of
    /// <c>Broker.Open</c>: nothing on disk makes those fail): the broker is closed as a dispose closes it.
    /// </summary>
    [Fact]
    public async Task An_open_that_fails_after_starting_its_threads_closes_the_broker_and_the_next_open_sees_the_messages()
    {
        using var dir = new TempDirectory("fastbroker-failed-start");
        await PublishAndCloseAsync(dir.Path);
        Broker? started = null;

        var e = Assert.Throws<InvalidOperationException>(() => Broker.Open(BrokerFixture.Options(dir.Path), null, startFault: b =>
        {
            started = b;
            throw new InvalidOperationException("test: the start failed");
        }));
        Assert.Equal("test: the start failed", e.Message);
        AssertReleased(dir.Path);
        Assert.NotNull(started);
        Assert.False(started.IsOpen, "the broker the failed open built is closed");

        await ReopensWithMessagesAsync(dir.Path);
    }

    private static async Task PublishAndCloseAsync(string path)
    {
        await using var broker = await Broker.OpenAsync(BrokerFixture.Options(path));
        broker.CreateTopic("ledger", TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024, Durability = Durability.Fsynced });
        for (var i = 0; i < Messages; i++)
        {
            await broker.PublishAsync("ledger", BrokerFixture.Utf8($"m{i}"));
        }

        // The look below sees an open broker's journal: an empty answer after the failed open means released.
        Assert.Contains(HeldUnder(path), held => held.Contains(Path.Combine("topics", "ledger", TopicRegistry.JournalDirectory), StringComparison.Ordinal));
    }

    private static async Task ReopensWithMessagesAsync(string path)
    {
        await using var broker = await Broker.OpenAsync(BrokerFixture.Options(path));
        using var sub = broker.Subscribe("ledger", new SubscriptionOptions { Start = StartPosition.Earliest });
        var got = Consume.Drain(sub, Messages);
        Assert.Equal(Enumerable.Range(0, Messages).Select(i => $"m{i}"), got.Select(m => m.Payload));
    }

    private static void AssertReleased(string directory)
    {
        var held = HeldUnder(directory);
        Assert.True(held.Count == 0, $"the failed open left {held.Count} mapping(s) and descriptor(s) in this process: {string.Join("; ", held)}");
    }

    /// <summary>
    /// The files under <paramref name="directory"/> that this process maps (<c>/proc/self/maps</c>) or holds a
    /// descriptor of (<c>/proc/self/fd</c>), one line each ("mapped …", "open …").
    /// </summary>
    private static List<string> HeldUnder(string directory)
    {
        var prefix = Path.GetFullPath(directory).TrimEnd('/') + "/";
        var held = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var at = line.IndexOf(prefix, StringComparison.Ordinal);
            if (at >= 0)
            {
                held.Add("mapped " + line[at..]);
            }
        }

        foreach (var link in Directory.EnumerateFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(link).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile by another thread (another test's)
            }

            if (target is not null && target.StartsWith(prefix, StringComparison.Ordinal))
            {
                held.Add("open " + target);
            }
        }

        return held;
    }
}
