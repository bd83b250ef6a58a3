using System.Net;
using FastBroker.Replication;
using FastBroker.Testing;
using Xunit.Abstractions;
using static FastBroker.ReplicationTests.Failover.AdminChecks;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// What the admin consistency tests share: an in-process pair whose nodes each serve an admin port, its log written to
/// the test's output when the test fails, and an admin answer the node's test hook (<c>AdminStateRead</c>) holds after
/// the route has read the node's state while the test changes the node's role.
/// </summary>
internal static class AdminAcrossRoleChange
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Starts the pair (a the primary, b its standby) with an admin port each and runs <paramref name="test"/> with the
    /// nodes and their admin endpoints; the pair's log goes to <paramref name="output"/> if it throws.
    /// </summary>
    internal static async Task WithAdminPairAsync(ITestOutputHelper output, Func<ReplicatedNode, ReplicatedNode, string, string, Task> test)
    {
        using var dir = new TempDirectory();
        var log = new List<string>();
        var (a, b) = await InProcessPair.StartAsync(dir, BrokerOptions.Default, o => o with { Log = line => { lock (log) { log.Add(line); } } });
        try
        {
            await using (a)
            await using (b)
            {
                await using var adminServerA = await a.StartAdminAsync("127.0.0.1", 0);
                await using var adminServerB = await b.StartAdminAsync("127.0.0.1", 0);
                await test(a, b, adminServerA.EndPoint.ToString(), adminServerB.EndPoint.ToString());
            }
        }
        catch
        {
            lock (log)
            {
                output.WriteLine(string.Join('\n', log));
            }

            throw;
        }
    }

    /// <summary>
    /// <see cref="WithAdminPairAsync"/> once b follows a: <paramref name="test"/> adds what it finds wrong to the list it is
    /// given, and the test fails with all of it at the end.
    /// </summary>
    internal static Task CollectFailuresAsync(ITestOutputHelper output, Func<ReplicatedNode, ReplicatedNode, string, string, List<string>, Task> test) =>
        WithAdminPairAsync(output, async (a, b, adminA, adminB) =>
        {
            var failures = new List<string>();
            await WaitForAsync(adminB, "/standby", HttpStatusCode.OK, "b follows a");
            await test(a, b, adminA, adminB, failures);
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        });

    /// <summary>
    /// Asks <paramref name="node"/>'s admin port for <paramref name="path"/>, runs <paramref name="change"/> while the
    /// route holds its read of the state, then lets the route answer: its code and body.
    /// </summary>
    internal static async Task<(HttpStatusCode Code, string Body)> AnswerAcrossAsync(ReplicatedNode node, string admin, string path, Func<Task> change)
    {
        var read = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var release = new ManualResetEventSlim();
        node.AdminStateRead = p =>
        {
            if (p == path && read.TrySetResult())
            {
                release.Wait(s_deadline);
            }
        };
        try
        {
            var answer = RequestAsync(admin, path);
            await read.Task.WaitAsync(s_deadline);
            await change();
            release.Set();
            var (code, _, body) = await answer.WaitAsync(s_deadline);
            return (code, body);
        }
        finally
        {
            node.AdminStateRead = null;
            release.Set();
        }
    }
}
