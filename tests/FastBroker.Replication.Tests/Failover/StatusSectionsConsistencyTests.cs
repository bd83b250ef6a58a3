using System.Net;
using System.Text.Json;
using FastBroker.Replication;
using FastBroker.Testing;
using Xunit.Abstractions;
using static FastBroker.ReplicationTests.Failover.AdminAcrossRoleChange;
using static FastBroker.ReplicationTests.Failover.AdminChecks;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>/status</c> takes its sections from the read its role and status come from: a primary's <c>standby</c> section
/// and <c>clientEndpoint</c>, a standby's <c>replica</c> section. Before, only the role, status, epoch and lease came
/// from that read and each section was read as it was written, so a standby promoted while answering said role
/// <c>standby</c> with a primary's <c>standby</c> section and no <c>replica</c>, and a primary that stepped down and
/// followed the new one said role <c>primary</c>, status <c>ok</c>, with a <c>replica</c> section connected to that
/// primary. The node's test hook (<c>AdminStateRead</c>) holds the answer while the test changes the node's role.
/// </summary>
public sealed class StatusSectionsConsistencyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public Task Status_sections_belong_to_the_role_it_states_when_the_node_changes_role_while_answering() =>
        CollectFailuresAsync(output, async (a, b, adminA, adminB, failures) =>
        {
            // b, following a, is promoted while it answers /status: the answer is a standby's, following a.
            var standby = await StatusAcrossAsync(b, adminB, async () =>
            {
                await b.PromoteAsync().WaitAsync(s_deadline);
                await Eventually.TrueAsync(() => b.Role == NodeRole.Primary && b.Server is not null, "b serves as primary", s_deadline);
            });
            failures.AddRange(Inconsistencies("b", standby, "standby", following: "a"));

            // a, now following b, is promoted while b, the primary, answers /status: b steps down and follows a before
            // it answers; the answer is a serving primary's, its standby a attached.
            await WaitForAsync(adminA, "/standby", HttpStatusCode.OK, "a follows b");
            var primary = await StatusAcrossAsync(b, adminB, async () =>
            {
                await a.PromoteAsync().WaitAsync(s_deadline);
                await Eventually.TrueAsync(() => b.Role == NodeRole.Standby && b.Replica is { Connected: true }, "b follows a", s_deadline);
            });
            failures.AddRange(Inconsistencies("b", primary, "primary", following: null));
        });

    /// <summary>Asks <paramref name="node"/> for /status and runs <paramref name="change"/> while the route holds its read of the state.</summary>
    private async Task<string> StatusAcrossAsync(ReplicatedNode node, string admin, Func<Task> change)
    {
        var (code, body) = await AnswerAcrossAsync(node, admin, "/status", change);
        Assert.Equal(HttpStatusCode.OK, code);
        output.WriteLine($"{node.NodeId} /status across a role change: {body}");
        return body;
    }

    /// <summary>What in <paramref name="body"/> does not belong to a node of <paramref name="role"/> (following <paramref name="following"/>).</summary>
    private static IEnumerable<string> Inconsistencies(string node, string body, string role, string? following)
    {
        var root = JsonDocument.Parse(body).RootElement;
        var stated = root.GetProperty("role").GetString();
        if (stated != role)
        {
            yield return $"{node}: role {stated}, expected {role} (as the node was when read): {body}";
            yield break;
        }

        var standbySection = root.TryGetProperty("standby", out var s) ? s : (JsonElement?)null;
        var replicaSection = root.TryGetProperty("replica", out var r) ? r : (JsonElement?)null;
        if (role == "primary")
        {
            if (replicaSection is { } replica)
            {
                yield return $"{node}: role primary, status {Status(body)}, with a replica section (connected {replica.GetProperty("connected")}, primaryId {replica.GetProperty("primaryId")}): {body}";
            }

            if (standbySection is not { } standby || !standby.GetProperty("attached").GetBoolean() || !root.TryGetProperty("clientEndpoint", out _))
            {
                yield return $"{node}: role primary, status {Status(body)}, without its standby attached or its client endpoint: {body}";
            }
        }
        else
        {
            if (standbySection is not null || root.TryGetProperty("clientEndpoint", out _))
            {
                yield return $"{node}: role {role}, status {Status(body)}, with a primary's standby section or client endpoint: {body}";
            }

            if (replicaSection is not { } replica || !replica.GetProperty("connected").GetBoolean() || replica.GetProperty("primaryId").GetString() != following)
            {
                yield return $"{node}: role {role}, status {Status(body)}, without a replica section connected to '{following}': {body}";
            }
        }
    }
}
