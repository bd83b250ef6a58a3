using System.Collections.Concurrent;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
using static FastBroker.ClientTests.DescriptorShortage;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A durable subscription's resume on a server that is out of descriptors for now: a real server process with a low
/// descriptor limit (<c>ulimit -n</c>), its descriptors taken by another client's durable subscriptions (each holds
/// its position file open) up to the 64 the process keeps in reserve, so the resume's position file cannot be opened
/// (EMFILE). That is no damage of the file: the server answers ResourceExhausted, the client keeps the subscription and
/// resumes it, without gaps or repeats, once a descriptor is free again; a damaged position file still ends it
/// (StorageError, naming the file).
/// </summary>
public class ResourceShortageResumeTests
{
    [Fact]
    public async Task A_resume_refused_for_want_of_descriptors_keeps_the_subscription_and_a_damaged_file_still_ends_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-shortage");
        using var host = await StartServerAsync(dir.Path);
        await using var proxy = new TcpProxy(host.Port);
        var events = new ConcurrentQueue<BrokerClientEvent>();
        await using var client = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [proxy.Endpoint], OnEvent = events.Enqueue });
        await using var hog = await BrokerClient.ConnectAsync(ClientOptions with { Endpoints = [host.Endpoint] });
        for (var i = 0; i < 4; i++)
        {
            await Within(hog.PublishAsync("shortage.main", Bytes($"m{i}")));
        }

        await using var sub = await Within(client.CreateSubscriptionAsync("shortage.main", Durable with { DurableName = "main" }));
        Assert.Equal(["m0", "m1"], (await TakeAsync(sub, 2)).Select(m => m.GetPayloadString()));
        await Within(sub.CommitAsync());

        // Durable subscriptions until the server has no descriptor left outside its reserve: the first one refused says
        // so, for now.
        var held = new List<ClientSubscription>();
        try
        {
            var refusal = await SubscribeUntilRefusedAsync(hog, held, host);
            Assert.Equal(ErrorCode.ResourceExhausted, refusal.ErrorCode);
            Assert.Contains("out of descriptors", refusal.Reason, StringComparison.Ordinal);
            Assert.Contains(Path.Combine(dir.Path, "subscriptions", $"hog{held.Count}.pos"), refusal.Reason, StringComparison.Ordinal);

            // The client's connection goes (its socket and its position file are closed on the server), what that frees
            // is taken again, and then the hog subscription whose position file has the lowest descriptor is given
            // back: the next connection is accepted on that descriptor, and the resume's position file finds none
            // outside the reserve.
            proxy.Cut();
            await EventuallyAsync(() => host.Child.HasExited || !PositionFileOpen(host.Child.Id, Path.Combine(dir.Path, "subscriptions", "main.pos")), "the server closes the client's position file");
            Assert.Equal(ErrorCode.ResourceExhausted, (await SubscribeUntilRefusedAsync(hog, held, host)).ErrorCode);
            await FreeLowestHogDescriptorAsync(held, host);
            proxy.Restore();

            var refused = await ResumeRefusedTwiceAsync(events, host, "the client's resume is refused twice for want of a descriptor");
            Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
            Assert.True(refused >= 2, $"the subscription ended instead of being resumed later: {Describe(events)}");
        }
        finally
        {
            // The shortage passes: one descriptor for the connection, one for the position file.
            await DisposeAllAsync(held);
        }

        await Within(hog.PublishAsync("shortage.main", Bytes("m4")));
        Assert.Equal(["m2", "m3", "m4"], (await TakeAsync(sub, 3)).Select(m => m.GetPayloadString()));
        await Within(sub.CommitAsync());
        Assert.DoesNotContain(events, e => e.Kind == BrokerClientEventKind.SubscriptionEnded);

        // A damaged position file is not a shortage: the resume is refused for good, naming the file.
        var path = Path.Combine(dir.Path, "subscriptions", "main.pos");
        proxy.Cut();
        await EventuallyAsync(() => !PositionFileOpen(host.Child.Id, path), "the server closes the client's position file");
        var bytes = await File.ReadAllBytesAsync(path);
        "NOTAPOSN"u8.CopyTo(bytes);
        await File.WriteAllBytesAsync(path, bytes);
        proxy.Restore();

        using var cts = new CancellationTokenSource(Deadline);
        var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
        {
            await foreach (var m in sub.ReadAllAsync(cts.Token))
            {
            }
        });
        Assert.Equal(ErrorCode.StorageError, error.ErrorCode);
        Assert.True(error.Reason.Contains(path, StringComparison.Ordinal), $"the error does not name the position file {path}: {error.Reason}");
        Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
    }

    private static bool PositionFileOpen(int pid, string path)
    {
        foreach (var fd in Directory.GetFileSystemEntries($"/proc/{pid}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget == path)
                {
                    return true;
                }
            }
            catch (IOException)
            {
                // closed meanwhile
            }
        }

        return false;
    }
}
