using System.Collections.Concurrent;
using FastBroker.Client;
using FastBroker.Protocol;
using FastBroker.Testing;
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
    // The host holds about 80 descriptors once it serves; neither connections nor position files take the last 64
    // (kept for the runtime): with 256, the hog's subscriptions fill the hundred or so between.
    private const int OpenFileLimit = 256;

    private static readonly SubscribeOptions s_durable = SubscribeOptions.Default with { Start = SubscribeStart.Committed(Protocol.StartKind.Earliest), Credit = 2 };

    [Fact]
    public async Task A_resume_refused_for_want_of_descriptors_keeps_the_subscription_and_a_damaged_file_still_ends_it()
    {
        Assert.True(OperatingSystem.IsLinux(), "ulimit -n and /proc: Linux only, like CI");
        using var dir = new TempDirectory("fastbroker-shortage");
        using var host = await HostProcess.StartAsync(OpenFileLimit, dir.Path);
        await using var proxy = new TcpProxy(host.Port);
        var events = new ConcurrentQueue<BrokerClientEvent>();
        var options = BrokerClientOptions.Default with { ReconnectTimeout = TimeSpan.FromSeconds(120), ConnectTimeout = TimeSpan.FromSeconds(30) };
        await using var client = await BrokerClient.ConnectAsync(options with { Endpoints = [proxy.Endpoint], OnEvent = events.Enqueue });
        await using var hog = await BrokerClient.ConnectAsync(options with { Endpoints = [host.Endpoint] });
        for (var i = 0; i < 4; i++)
        {
            await Within(hog.PublishAsync("shortage.main", Bytes($"m{i}")));
        }

        await using var sub = await Within(client.CreateSubscriptionAsync("shortage.main", s_durable with { DurableName = "main" }));
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
            var (fd, index) = LowestHogDescriptor(host.Child.Id);
            Assert.True(fd < OpenFileLimit - 64, $"the lowest descriptor a hog's position file holds is {fd}, in the reserve");
            var freed = held[index];
            held.RemoveAt(index);
            await freed.DisposeAsync();
            await EventuallyAsync(() => host.Child.HasExited || !File.Exists($"/proc/{host.Child.Id}/fd/{fd}"), $"the server closes descriptor {fd}");
            proxy.Restore();

            var refused = 0;
            await EventuallyAsync(
                () => host.Child.HasExited
                    || (refused = events.Count(e => e.Kind == BrokerClientEventKind.Disconnected && e.Code == ErrorCode.ResourceExhausted && e.Message.Contains("resuming subscription", StringComparison.Ordinal))) >= 2
                    || events.Any(e => e.Kind == BrokerClientEventKind.SubscriptionEnded),
                "the client's resume is refused twice for want of a descriptor");
            Assert.False(host.Child.HasExited, $"the server died: {host.Child.Errors}");
            Assert.True(refused >= 2, $"the subscription ended instead of being resumed later: {string.Join("; ", events.Where(e => e.Kind is BrokerClientEventKind.SubscriptionEnded or BrokerClientEventKind.Disconnected).Select(e => $"{e.Kind} ({e.Code}): {e.Message}"))}");
        }
        finally
        {
            // The shortage passes: one descriptor for the connection, one for the position file.
            foreach (var s in held)
            {
                await s.DisposeAsync();
            }
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

    private static async Task<BrokerClientException> SubscribeUntilRefusedAsync(BrokerClient hog, List<ClientSubscription> held, HostProcess host)
    {
        for (var i = 0; i < OpenFileLimit; i++)
        {
            try
            {
                held.Add(await Within(hog.CreateSubscriptionAsync("shortage.hog", s_durable with { DurableName = $"hog{held.Count}" })));
            }
            catch (BrokerClientException e)
            {
                return e;
            }
            catch (TimeoutException)
            {
                Assert.Fail($"subscription hog{held.Count} was not answered (server {(host.Child.HasExited ? "exited" : "running")}, {OpenDescriptors(host.Child.Id)} descriptors): {host.Child.Errors}");
            }
        }

        Assert.Fail($"{OpenFileLimit} durable subscriptions were all taken under a limit of {OpenFileLimit} descriptors");
        return null!;
    }

    private static int OpenDescriptors(int pid)
    {
        try
        {
            return Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
        }
        catch (IOException)
        {
            return int.MaxValue; // gone: HasExited says so
        }
    }

    /// <summary>The lowest descriptor that holds a hog's position file, and which hog's (its index in the list).</summary>
    private static (int Fd, int Index) LowestHogDescriptor(int pid)
    {
        var lowest = (Fd: int.MaxValue, Index: -1);
        foreach (var entry in Directory.GetFileSystemEntries($"/proc/{pid}/fd"))
        {
            try
            {
                var name = Path.GetFileName(new FileInfo(entry).LinkTarget);
                var fd = int.Parse(Path.GetFileName(entry), System.Globalization.CultureInfo.InvariantCulture);
                if (name is not null && name.StartsWith("hog", StringComparison.Ordinal) && name.EndsWith(".pos", StringComparison.Ordinal) && fd < lowest.Fd)
                {
                    lowest = (fd, int.Parse(name[3..^4], System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // closed meanwhile
            }
        }

        Assert.True(lowest.Index >= 0, "no hog's position file is open");
        return lowest;
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
