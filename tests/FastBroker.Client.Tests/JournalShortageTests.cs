using System.Diagnostics;
using System.Globalization;
using FastBroker.Client;
using FastBroker.Journal;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.DescriptorShortage;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A topic's journal on a server that is out of descriptors for now: a real server process with a low descriptor limit
/// (<c>ulimit -n</c>), its descriptors taken by another client's durable subscriptions up to the 64 the process keeps
/// in reserve. Opening a new topic's journal (its first segment) and rolling a topic to a new segment are refused
/// with ResourceExhausted, not StorageError and not on a descriptor of the reserve; once descriptors are free the same
/// requests succeed, and the journal holds exactly the publishes that were acknowledged.
/// </summary>
public class JournalShortageTests
{
    [Fact]
    public async Task A_subscribe_that_creates_a_topic_while_descriptors_are_short_is_refused_for_now_and_succeeds_once_they_are_free()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-journal-shortage");
        using var host = await StartServerAsync(dir.Path);
        await using var client = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
        await using var hog = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
        var held = new List<ClientSubscription>();
        try
        {
            Assert.Equal(ErrorCode.ResourceExhausted, (await SubscribeUntilRefusedAsync(hog, held, host)).ErrorCode);

            // The new topic's settings are written (a file closed at once), its journal's first segment would be held:
            // refused for now, naming the topic and what ran short.
            var refusal = await Assert.ThrowsAsync<BrokerClientException>(async () => await Within(client.CreateSubscriptionAsync("shortage.new", SubscribeOptions.Default)));
            Assert.Equal(ErrorCode.ResourceExhausted, refusal.ErrorCode);
            Assert.Contains("shortage.new", refusal.Reason, StringComparison.Ordinal);
            Assert.Contains("out of descriptors", refusal.Reason, StringComparison.Ordinal);
            Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
        }
        finally
        {
            await DisposeAllAsync(held);
        }

        // The shortage has passed: the same subscribe opens the topic, which works.
        await using var sub = await Within(client.CreateSubscriptionAsync("shortage.new", SubscribeOptions.Default));
        await Within(client.PublishAsync("shortage.new", Bytes("after")));
        Assert.Equal(["after"], (await TakeAsync(sub, 1)).Select(m => m.GetPayloadString()));
        Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
    }

    [Fact]
    public async Task A_topic_whose_creation_was_refused_for_now_leaves_nothing_behind_and_a_restart_does_not_open_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-journal-shortage");
        var topicDir = Path.Combine(dir.Path, "topics", "shortage.refused");
        using (var host = await StartServerAsync(dir.Path))
        {
            await using var client = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
            await using var hog = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
            var held = new List<ClientSubscription>();
            try
            {
                Assert.Equal(ErrorCode.ResourceExhausted, (await SubscribeUntilRefusedAsync(hog, held, host)).ErrorCode);
                var refusal = await Assert.ThrowsAsync<BrokerClientException>(async () => await Within(client.CreateSubscriptionAsync("shortage.refused", SubscribeOptions.Default)));
                Assert.Equal(ErrorCode.ResourceExhausted, refusal.ErrorCode);

                // Created whole or not at all: neither its settings nor its journal's directory are left.
                Assert.False(Directory.Exists(topicDir), $"the refused topic's directory is left: {Entries(topicDir)}");
                Assert.DoesNotContain("\"shortage.refused\"", await Within(client.AdminAsync(AdminQuery.ListTopics)), StringComparison.Ordinal);
            }
            finally
            {
                await DisposeAllAsync(held);
            }

            await StopAsync(host);
        }

        // The next start has no such topic; the same subscribe then creates it, and it works.
        using var again = await StartServerAsync(dir.Path);
        await using var after = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [again.Endpoint] });
        Assert.DoesNotContain("\"shortage.refused\"", await Within(after.AdminAsync(AdminQuery.ListTopics)), StringComparison.Ordinal);
        await using var sub = await Within(after.CreateSubscriptionAsync("shortage.refused", SubscribeOptions.Default));
        await Within(after.PublishAsync("shortage.refused", Bytes("created")));
        Assert.Equal(["created"], (await TakeAsync(sub, 1)).Select(m => m.GetPayloadString()));
        Assert.Contains("\"shortage.refused\"", await Within(after.AdminAsync(AdminQuery.ListTopics)), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(topicDir, "topic.meta")));
    }

    [Fact]
    public async Task A_publish_that_needs_a_new_segment_while_descriptors_are_short_is_refused_for_now_and_the_journal_reopens_clean()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-journal-shortage");
        using var host = await StartServerAsync(dir.Path);
        var acked = new List<string>();
        var payload = new string('x', 32 * 1024);
        await using (var client = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] }))
        await using (var hog = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] }))
        {
            await Within(client.PublishAsync("shortage.roll", Bytes("m0:")));
            acked.Add("m0:");
            var held = new List<ClientSubscription>();
            try
            {
                Assert.Equal(ErrorCode.ResourceExhausted, (await SubscribeUntilRefusedAsync(hog, held, host)).ErrorCode);

                // The test host's segments hold 4 MiB, about 127 of these: within three segments' worth a roll needs a
                // segment of its own (the pre-fault thread's spare, if it had one, takes only the first roll).
                BrokerClientException? refusal = null;
                for (var i = 1; i <= 400 && refusal is null; i++)
                {
                    var text = $"m{i}:{payload}";
                    try
                    {
                        await Within(client.PublishAsync("shortage.roll", Bytes(text)));
                        acked.Add(text);
                    }
                    catch (BrokerClientException e)
                    {
                        refusal = e;
                    }
                }

                Assert.True(refusal is not null, $"{acked.Count} publishes of 32 KiB (several 4 MiB segments) were all taken with descriptors only in the reserve");
                Assert.Equal(ErrorCode.ResourceExhausted, refusal.ErrorCode); // a CONFIRM carries the code only
                Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
            }
            finally
            {
                await DisposeAllAsync(held);
            }

            // The shortage has passed: the next publish rolls and is written after the acknowledged ones.
            await Within(client.PublishAsync("shortage.roll", Bytes("after")));
            acked.Add("after");
        }

        // A graceful stop (SIGTERM), then the journal opens with nothing to repair and holds exactly what was acknowledged.
        await StopAsync(host);
        using var journal = JournalLog.Open(Path.Combine(dir.Path, "topics", "shortage.roll", "journal"));
        Assert.True(journal.Recovery.IsClean, $"the journal needed repair: {journal.Recovery}");
        var stored = new List<string>();
        using (var reader = journal.OpenReader(ReadStart.Beginning))
        {
            while (reader.TryRead(out var record))
            {
                stored.Add(System.Text.Encoding.UTF8.GetString(record.Payload));
            }
        }

        Assert.Equal(acked.Select(Label), stored.Select(Label));
        Assert.Equal(acked, stored);
    }

    /// <summary>A graceful stop (SIGTERM), waited for.</summary>
    private static async Task StopAsync(HostProcess host)
    {
        using (var term = Process.Start("kill", ["-TERM", host.Child.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await term.WaitForExitAsync();
        }

        Assert.True(host.Child.WaitForExit(Deadline), "the server did not stop after SIGTERM");
    }

    private static string Entries(string directory) =>
        Directory.Exists(directory) ? string.Join(", ", Directory.GetFileSystemEntries(directory, "*", SearchOption.AllDirectories)) : "";

    private static string Label(string payload) => payload[..(payload.IndexOf(':', StringComparison.Ordinal) + 1)];
}
