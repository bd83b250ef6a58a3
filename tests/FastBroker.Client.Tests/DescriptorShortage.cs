using System.Globalization;
using FastBroker.Client;
using FastBroker.Protocol;
using static FastBroker.ClientTests.Wire;

namespace FastBroker.ClientTests;

/// <summary>
/// A real server process out of descriptors for now, for the shortage tests: the test host started under a low
/// descriptor limit (<c>ulimit -n</c>), its descriptors taken by a hog client's durable subscriptions (each holds its
/// position file open) up to the <see cref="Reserve"/> the process keeps for the runtime, some given back, and the
/// server's descriptors and the client's refusals looked at in <c>/proc</c> and the client's events.
/// </summary>
internal static class DescriptorShortage
{
    /// <summary>
    /// The host holds about 80 descriptors once it serves (assemblies, thread pipes, the journal, its listener); neither
    /// connections nor position files take the last <see cref="Reserve"/>: with 256, the hog's subscriptions (or a
    /// connection flood) fill the hundred or so between.
    /// </summary>
    public const int OpenFileLimit = 256;

    /// <summary>The descriptors the server keeps for the runtime, below its limit.</summary>
    public const int Reserve = 64;

    /// <summary>A durable subscription from the earliest committed position, its credit kept small.</summary>
    public static readonly SubscribeOptions Durable = SubscribeOptions.Default with { Start = SubscribeStart.Committed(Protocol.StartKind.Earliest), Credit = 2 };

    /// <summary>A client that keeps reconnecting (and retrying what is refused for now) well past a shortage.</summary>
    public static readonly BrokerClientOptions ClientOptions = BrokerClientOptions.Default with { ReconnectTimeout = TimeSpan.FromSeconds(120), ConnectTimeout = TimeSpan.FromSeconds(30) };

    /// <summary>Starts the test host on <paramref name="dataDirectory"/> under <see cref="OpenFileLimit"/> descriptors.</summary>
    public static Task<HostProcess> StartServerAsync(string dataDirectory, int port = 0) =>
        HostProcess.StartAsync(OpenFileLimit, dataDirectory, port);

    /// <summary>
    /// Durable subscriptions of <paramref name="hog"/> (on topic <c>shortage.hog</c>, named <c>hog</c> and their index
    /// in <paramref name="held"/>) until the server refuses one: the refusal.
    /// </summary>
    public static async Task<BrokerClientException> SubscribeUntilRefusedAsync(BrokerClient hog, List<ClientSubscription> held, HostProcess host)
    {
        for (var i = 0; i < OpenFileLimit; i++)
        {
            try
            {
                held.Add(await Within(hog.CreateSubscriptionAsync("shortage.hog", Durable with { DurableName = $"hog{held.Count}" })));
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

    /// <summary>
    /// Gives back the hog subscription whose position file holds the lowest descriptor (which must be outside the
    /// reserve) and waits for the server to close it: the next descriptor the server takes is that one.
    /// </summary>
    public static async Task FreeLowestHogDescriptorAsync(List<ClientSubscription> held, HostProcess host)
    {
        var (fd, index) = LowestHogDescriptor(host.Child.Id);
        Assert.True(fd < OpenFileLimit - Reserve, $"the lowest descriptor a hog's position file holds is {fd}, in the reserve");
        var freed = held[index];
        held.RemoveAt(index);
        await freed.DisposeAsync();
        await EventuallyAsync(() => host.Child.HasExited || !File.Exists($"/proc/{host.Child.Id}/fd/{fd}"), $"the server closes descriptor {fd}");
    }

    /// <summary>Gives back every subscription in <paramref name="held"/>: the shortage passes.</summary>
    public static async Task DisposeAllAsync(List<ClientSubscription> held)
    {
        foreach (var s in held)
        {
            await s.DisposeAsync();
        }

        held.Clear();
    }

    /// <summary>
    /// Waits until the client's resume of a subscription (or rejoin of a group) has been refused for want of a resource
    /// at least twice (so it was tried again), an ended subscription or membership is reported, or the server exits:
    /// the count of such refusals.
    /// </summary>
    public static async Task<int> ResumeRefusedTwiceAsync(IReadOnlyCollection<BrokerClientEvent> events, HostProcess host, string because)
    {
        var refused = 0;
        await EventuallyAsync(
            () => host.Child.HasExited
                || (refused = events.Count(e => e.Kind == BrokerClientEventKind.Disconnected && e.Code == ErrorCode.ResourceExhausted && e.Message.Contains("resuming subscription", StringComparison.Ordinal))) >= 2
                || events.Any(e => e.Kind == BrokerClientEventKind.SubscriptionEnded),
            because);
        return refused;
    }

    /// <summary>The client's disconnections and ended subscriptions, for a failure message.</summary>
    public static string Describe(IEnumerable<BrokerClientEvent> events) =>
        string.Join("; ", events.Where(e => e.Kind is BrokerClientEventKind.SubscriptionEnded or BrokerClientEventKind.Disconnected).Select(e => $"{e.Kind} ({e.Code}): {e.Message}"));

    /// <summary>How many descriptors process <paramref name="pid"/> holds (int.MaxValue once it is gone).</summary>
    public static int OpenDescriptors(int pid)
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
    public static (int Fd, int Index) LowestHogDescriptor(int pid)
    {
        var lowest = (Fd: int.MaxValue, Index: -1);
        foreach (var entry in Directory.GetFileSystemEntries($"/proc/{pid}/fd"))
        {
            try
            {
                var name = Path.GetFileName(new FileInfo(entry).LinkTarget);
                var fd = int.Parse(Path.GetFileName(entry), CultureInfo.InvariantCulture);
                if (name is not null && name.StartsWith("hog", StringComparison.Ordinal) && name.EndsWith(".pos", StringComparison.Ordinal) && fd < lowest.Fd)
                {
                    lowest = (fd, int.Parse(name[3..^4], CultureInfo.InvariantCulture));
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
}
