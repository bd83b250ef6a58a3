using System.Net;
using System.Text.Json;
using FastBroker.Replication;
using FastBroker.Testing;
using Xunit.Abstractions;
using static FastBroker.ReplicationTests.Failover.AdminAcrossRoleChange;
using static FastBroker.ReplicationTests.Failover.AdminChecks;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Each answer of <c>/primary</c>, <c>/standby</c> and <c>/status</c> comes from one read of the node's state, so its
/// HTTP code, status, reason and role agree even when the node changes role while the answer is made. Before, a route
/// decided whether the node served from one read and took the status it printed from another: a standby promoted in
/// between answered <c>/primary</c> 503 with the status <c>ok</c>, and <c>/status</c> said role <c>standby</c>, status
/// <c>ok</c>. That window is microseconds wide, too narrow for a loop of requests to hit it reliably, so the node's
/// test hook (<c>AdminStateRead</c>, called after a route has read the state and before it answers) holds the answer
/// while the test promotes the node.
/// </summary>
public sealed class AdminAnswerConsistencyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public Task Role_checks_and_status_agree_with_themselves_when_the_node_is_promoted_while_answering() =>
        CollectFailuresAsync(output, async (a, b, adminA, adminB, failures) =>
        {
            // b, following a, is asked /standby and promoted before it answers; then a, following b, /primary; then
            // b, following a again, /status.
            failures.AddRange(await AnswerAcrossPromotionAsync(b, adminB, "/standby"));
            await WaitForAsync(adminA, "/standby", HttpStatusCode.OK, "a follows b");
            failures.AddRange(await AnswerAcrossPromotionAsync(a, adminA, "/primary"));
            await WaitForAsync(adminB, "/standby", HttpStatusCode.OK, "b follows a again");
            failures.AddRange(await AnswerAcrossPromotionAsync(b, adminB, "/status"));
        });

    /// <summary>Asks <paramref name="node"/> for <paramref name="path"/>, promotes it while the route holds its read of the state, and checks the answer.</summary>
    private async Task<IEnumerable<string>> AnswerAcrossPromotionAsync(ReplicatedNode node, string admin, string path)
    {
        var (code, body) = await AnswerAcrossAsync(node, admin, path, async () =>
        {
            var epoch = await node.PromoteAsync().WaitAsync(s_deadline);
            await Eventually.TrueAsync(() => node.Role == NodeRole.Primary && node.Server is not null, $"{node.NodeId} serves as primary at epoch {epoch}", s_deadline);
        });
        output.WriteLine($"{node.NodeId} {path} across its promotion: {(int)code} {body}");
        return Inconsistency(path, code, body) is { } wrong ? [$"{node.NodeId} GET {path}: {wrong}: {(int)code} {body}"] : [];
    }

    /// <summary>What in an answer disagrees with the rest of it, or null.</summary>
    private static string? Inconsistency(string path, HttpStatusCode code, string body)
    {
        var status = Status(body);
        var reason = Reason(body);
        switch (path)
        {
            case "/primary":
                if ((code == HttpStatusCode.OK) != (status == "ok"))
                {
                    return $"code {(int)code} with status {status} (200 is the serving primary's alone, status ok)";
                }

                return code != HttpStatusCode.OK && (reason is null || !reason.StartsWith(status!, StringComparison.Ordinal))
                    ? $"a 503 whose reason does not say its status {status}"
                    : null;
            case "/standby":
                if (code == HttpStatusCode.OK)
                {
                    return status == "standby" && reason is null ? null : "200 for a node that is not a following standby";
                }

                return status == "standby" ? (reason is null ? "a 503 for a standby with no reason" : null)
                    : reason is not null && !reason.StartsWith(status + ":", StringComparison.Ordinal) && !reason.StartsWith($"this node is {status},", StringComparison.Ordinal)
                    ? $"a 503 whose reason does not say its status {status}"
                    : null;
            default:
                var role = JsonDocument.Parse(body).RootElement.GetProperty("role").GetString();
                var expected = status switch
                {
                    "ok" or "primary" => "primary",
                    "standby" => "standby",
                    "starting" => "starting",
                    _ => role,
                };
                return role == expected && !(status == "promoting" && role == "primary") ? null : $"role {role} with status {status}";
        }
    }
}
