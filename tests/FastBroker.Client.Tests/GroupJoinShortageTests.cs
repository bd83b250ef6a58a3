using System.Collections.Concurrent;
using System.Text.Json;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.DescriptorShortage;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// JOIN_GROUP on a server that is out of descriptors for now: a real server process with a low descriptor limit
/// (<c>ulimit -n</c>), its descriptors taken by another client's durable subscriptions up to the 64 the process keeps in
/// reserve, so the group's state file cannot be held open (EMFILE). A first join is refused with ResourceExhausted (the
/// client's JoinGroupAsync throws it, naming the file), and leaves no state file behind; a rejoin after a reconnect
/// (the server restarted, so the group is opened anew) is refused for now and tried again by the client. Once
/// descriptors are free the join succeeds and the group works: its messages are delivered and their acks stored.
/// </summary>
public class GroupJoinShortageTests
{
    private const string Topic = "shortage.jobs";

    [Fact]
    public async Task A_join_that_opens_the_group_state_file_while_descriptors_are_short_is_refused_for_now_and_succeeds_once_they_are_free()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-group-shortage");
        using var host = await StartServerAsync(dir.Path);
        await using var client = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
        await using var hog = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
        for (var i = 0; i < 3; i++)
        {
            await Within(hog.PublishAsync(Topic, Bytes($"j{i}")));
        }

        var state = Path.Combine(dir.Path, "topics", Topic, "groups", "workers.state");
        var held = new List<ClientSubscription>();
        try
        {
            Assert.Equal(ErrorCode.ResourceExhausted, (await SubscribeUntilRefusedAsync(hog, held, host)).ErrorCode);

            // The topic's journal is open already: the join needs only the group's state file, held while the group lives.
            var refusal = await Assert.ThrowsAsync<BrokerClientException>(async () => await Within(client.JoinGroupAsync(Topic, "workers")));
            Assert.Equal(ErrorCode.ResourceExhausted, refusal.ErrorCode);
            Assert.Contains("out of descriptors", refusal.Reason, StringComparison.Ordinal);
            Assert.Contains(state, refusal.Reason, StringComparison.Ordinal);
            Assert.False(File.Exists(state), $"the refused join left {state} behind (it would open next time as a state file whose state was lost)");
            Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
        }
        finally
        {
            await DisposeAllAsync(held);
        }

        // The shortage has passed: the same join succeeds, and the group delivers and stores its acks.
        await using var member = await Within(client.JoinGroupAsync(Topic, "workers"));
        await Within(hog.PublishAsync(Topic, Bytes("j3")));
        await TakeAndAckAsync(member, ["j0", "j1", "j2", "j3"]);
        await AckFloorReachesAsync(hog, "workers", 4, host);
    }

    [Fact]
    public async Task A_rejoin_that_opens_the_group_state_file_while_descriptors_are_short_is_retried_and_the_member_works_once_they_are_free()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-group-shortage");
        using var first = await StartServerAsync(dir.Path);
        var port = first.Port;
        await using var proxy = new TcpProxy(port);
        var events = new ConcurrentQueue<BrokerClientEvent>();
        await using var client = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [proxy.Endpoint], OnEvent = events.Enqueue });
        await using var member = await Within(client.JoinGroupAsync(Topic, "workers", GroupJoinOptions.Default with { Prefetch = 1 }));
        await using (var producer = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [first.Endpoint] }))
        {
            for (var i = 0; i < 4; i++)
            {
                await Within(producer.PublishAsync(Topic, Bytes($"j{i}")));
            }

            await TakeAndAckAsync(member, ["j0"]);
            await AckFloorReachesAsync(producer, "workers", 1, first);
        }

        // The member's connection goes and the server with it: the next one opens the group, and its state file, anew.
        proxy.Cut();
        first.Kill();
        using var host = await StartServerAsync(dir.Path, port);
        await using var hog = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
        var held = new List<ClientSubscription>();
        try
        {
            Assert.Equal(ErrorCode.ResourceExhausted, (await SubscribeUntilRefusedAsync(hog, held, host)).ErrorCode);

            // The hog subscription whose position file has the lowest descriptor is given back: the member's next
            // connection is accepted on that descriptor, and its rejoin's state file finds none outside the reserve.
            await FreeLowestHogDescriptorAsync(held, host);
            proxy.Restore();

            var refused = await ResumeRefusedTwiceAsync(events, host, "the member's rejoin is refused twice for want of a descriptor");
            Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
            Assert.True(refused >= 2, $"the membership ended instead of being rejoined later: {Describe(events)}");
            var refusal = events.First(e => e.Kind == BrokerClientEventKind.Disconnected && e.Code == ErrorCode.ResourceExhausted);
            Assert.Contains("out of descriptors", refusal.Message, StringComparison.Ordinal);
            Assert.Contains(Path.Combine(dir.Path, "topics", Topic, "groups", "workers.state"), refusal.Message, StringComparison.Ordinal);
        }
        finally
        {
            await DisposeAllAsync(held);
        }

        // The shortage has passed: the member rejoins where the group's state says, the unacked messages come again.
        await Within(hog.PublishAsync(Topic, Bytes("j4")));
        await TakeAndAckAsync(member, ["j1", "j2", "j3", "j4"]);
        await AckFloorReachesAsync(hog, "workers", 5, host);
        Assert.DoesNotContain(events, e => e.Kind == BrokerClientEventKind.SubscriptionEnded);
    }

    /// <summary>Takes <paramref name="expected"/> (in order: one member, prefetch kept small) and acks each.</summary>
    private static async Task TakeAndAckAsync(GroupMember member, string[] expected)
    {
        var got = new List<string>();
        using var cts = new CancellationTokenSource(Deadline);
        while (got.Count < expected.Length)
        {
            var m = await member.ReadAsync(cts.Token);
            got.Add(m.GetPayloadString());
            await member.AckAsync(m, cts.Token);
        }

        Assert.Equal(expected, got);
    }

    /// <summary>Waits for the server to have stored the acks up to <paramref name="floor"/> (ListGroups: ackFloor).</summary>
    private static async Task AckFloorReachesAsync(BrokerClient admin, string group, long floor, HostProcess host)
    {
        var last = "";
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            last = await Within(admin.AdminAsync(AdminQuery.ListGroups, Topic));
            using var doc = JsonDocument.Parse(last);
            var g = doc.RootElement.GetProperty("groups").EnumerateArray().FirstOrDefault(e => e.GetProperty("group").GetString() == group);
            if (g.ValueKind == JsonValueKind.Object && g.GetProperty("ackFloor").GetInt64() == floor)
            {
                return;
            }

            Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
            Assert.True(DateTime.UtcNow < deadline, $"group '{group}' did not store acks up to {floor}: {last}");
            await Task.Delay(20);
        }
    }
}
