using System.Collections.Concurrent;
using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// A topic whose creation fails on disk (its directory cannot be made, its journal cannot be opened) is refused with the
/// broker's typed error, whatever asked for it (<c>CreateTopic</c>, a publish or a subscribe that creates it on first
/// use, a group's join): <see cref="BrokerErrorCode.StorageError"/> naming the topic and the cause, or
/// <see cref="BrokerErrorCode.ResourceExhausted"/> for a shortage; never the raw <see cref="IOException"/>. Nothing of
/// the topic is left (not registered, no directory), the broker goes on serving, and the same topic is created once
/// the cause is gone. The failures come from <c>TopicRegistry.FileStep</c>, which throws where the real call would.
/// </summary>
public class TopicCreationErrorTests
{
    private const string Cause = "Input/output error (test)";

    [Fact]
    public async Task A_topic_whose_directory_cannot_be_created_is_refused_with_StorageError_by_every_path_and_created_once_the_cause_is_gone()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var dir = Path.Combine(f.DataDirectory, "topics", "orders");
        var failing = 1;
        b.Topics.FileStep = what =>
        {
            if (Volatile.Read(ref failing) == 1 && what == $"create directory {dir}")
            {
                throw new IOException(Cause);
            }
        };

        var refusals = new List<(string How, Exception? Error)>
        {
            ("CreateTopic", Refusal(() => b.CreateTopic("orders"))),
            ("TryPublish", Refusal(() => b.TryPublish("orders", "m"u8))),
            ("PublishAsync", await RefusalAsync(async () => await b.PublishAsync("orders", "m"u8.ToArray()))),
            ("Subscribe", Refusal(() => b.Subscribe("orders").Dispose())),
            ("JoinGroup", Refusal(() => b.JoinGroup("orders", "workers").Dispose())),
        };
        foreach (var (how, e) in refusals)
        {
            Assert.True(
                e is BrokerException { Code: BrokerErrorCode.StorageError } && e.Message.Contains("'orders'", StringComparison.Ordinal) && e.Message.Contains(Cause, StringComparison.Ordinal) && e.InnerException is IOException,
                $"{how}: expected BrokerException(StorageError) naming 'orders' and '{Cause}' around the IOException, got: {Describe(e)}");
        }

        AssertNothingLeft(b, dir);

        // The broker goes on: another topic is created and published to.
        Assert.Equal(0, await b.PublishAsync("other", "o"u8.ToArray()));

        // The cause gone, the same topic is created on first use as if nothing had happened.
        Volatile.Write(ref failing, 0);
        Assert.Equal(0, await b.PublishAsync("orders", "m"u8.ToArray()));
        Assert.True(b.TopicExists("orders"));
        Assert.True(File.Exists(Path.Combine(dir, TopicRegistry.MetaFile)));
        Assert.Equal(1, b.GetSnapshot().Topics.Single(t => t.Name == "orders").Head);
    }

    [Fact]
    public async Task A_shortage_creating_a_topics_directory_is_ResourceExhausted_naming_it()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var dir = Path.Combine(f.DataDirectory, "topics", "orders");
        const int Emfile = 24;
        b.Topics.FileStep = what =>
        {
            if (what == $"create directory {dir}")
            {
                throw new IOException("Too many open files (test)", Emfile);
            }
        };

        var e = await RefusalAsync(async () => await b.PublishAsync("orders", "m"u8.ToArray()));
        Assert.True(
            e is BrokerException { Code: BrokerErrorCode.ResourceExhausted } && e.Message.Contains("'orders'", StringComparison.Ordinal) && e.Message.Contains("out of descriptors", StringComparison.Ordinal),
            $"expected BrokerException(ResourceExhausted) naming 'orders' and the shortage, got: {Describe(e)}");
        AssertNothingLeft(b, dir);
    }

    [Fact]
    public async Task A_topic_whose_journal_cannot_be_opened_is_refused_with_StorageError_and_what_its_creation_made_is_removed()
    {
        var log = new ConcurrentQueue<string>();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue });
        var b = f.Broker;
        var dir = Path.Combine(f.DataDirectory, "topics", "orders");
        var failing = 1;
        b.Topics.FileStep = what =>
        {
            if (Volatile.Read(ref failing) == 1 && what == $"open journal in {dir}")
            {
                throw new UnauthorizedAccessException("Access to the path is denied (test)");
            }
        };

        var e = Refusal(() => b.CreateTopic("orders"));
        Assert.True(
            e is BrokerException { Code: BrokerErrorCode.StorageError } && e.Message.Contains("'orders'", StringComparison.Ordinal) && e.Message.Contains("denied (test)", StringComparison.Ordinal),
            $"expected BrokerException(StorageError) naming 'orders' and the cause, got: {Describe(e)}");
        AssertNothingLeft(b, dir); // the directory and the pending settings the creation had made are gone

        Volatile.Write(ref failing, 0);
        b.CreateTopic("orders");
        Assert.Equal(0, await b.PublishAsync("orders", "m"u8.ToArray()));
        Assert.DoesNotContain(log, l => l.Contains("could not all be removed", StringComparison.Ordinal));
    }

    private static void AssertNothingLeft(Broker b, string dir)
    {
        Assert.False(b.TopicExists("orders"));
        Assert.DoesNotContain(b.GetSnapshot().Topics, t => t.Name == "orders");
        Assert.False(Directory.Exists(dir) || File.Exists(dir), $"'{dir}' is left behind");
    }

    private static string Describe(Exception? e) => e switch
    {
        null => "no exception",
        BrokerException b => $"BrokerException({b.Code}): {b.Message}",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    private static Exception? Refusal(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private static async Task<Exception?> RefusalAsync(Func<Task> action)
    {
        try
        {
            await action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
}
