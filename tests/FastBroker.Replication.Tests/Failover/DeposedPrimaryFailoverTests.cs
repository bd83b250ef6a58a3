using Xunit.Abstractions;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Invariant 6, second half: a primary that wrote records its standby never got (local acks while the standby was
/// down), then died, and was replaced, comes back as the standby of the new epoch, cuts exactly that tail, copies what
/// the new primary wrote, and can take over again (fail back) with the new primary's history.
/// </summary>
[Collection(nameof(FailoverCollection))]
public sealed class DeposedPrimaryFailoverTests(ITestOutputHelper output)
{
    private const string Topic = "rejoin.orders";
    private const int Replicated = 100;
    private const int LocalOnly = 40;
    private const int OnNewPrimary = 60;

    [Fact]
    public async Task Deposed_primary_rejoins_truncates_its_unreplicated_tail_and_can_fail_back()
    {
        await using var pair = new PairHarness();
        try
        {
            int portA = FreePort.Next(), portB = FreePort.Next();
            var a = pair.AddNode("a", portA, $"127.0.0.1:{portB}", ["--acks", "standby-durable", "--role", "primary"]);
            var b = pair.AddNode("b", portB, $"127.0.0.1:{portA}", ["--acks", "standby-durable", "--role", "standby"]);
            await a.StartAsync();
            await b.StartAsync();
            var epoch1 = (await a.WaitForAsync(s => s.StandbyConfirming, "a is primary and b confirms its publishes")).Epoch;

            // 1. Standby-durable: on both.
            await PublishAsync(a, "r", Replicated, FastBroker.Protocol.Durability.StandbyDurable);
            await b.WaitForAsync(s => s.ReplicaOf(Topic) is { Durable: Replicated }, "b holds the replicated messages durably");

            // 2. The standby dies; local acks are confirmed by a alone.
            b.Kill();
            await a.WaitForAsync(s => s.Standby is { Attached: false }, "a sees its standby gone");
            await PublishAsync(a, "l", LocalOnly, FastBroker.Protocol.Durability.Written);

            // 3. a dies; b comes back (it cannot reach a, so it waits as standby) and is promoted by the operator.
            a.Kill();
            await b.StartAsync();
            await b.WaitForAsync(s => s.IsStandby, "b restarts as standby (no witness: it never promotes itself)");
            var (status, body) = await b.PromoteAsync();
            Assert.True(status == 200, $"POST /promote on b: {status} {body}");
            var epoch2 = (await b.WaitForAsync(s => s.IsPrimary, "b is primary")).Epoch;
            Assert.True(epoch2 > epoch1, $"new epoch {epoch2} after {epoch1}");
            await PublishAsync(b, "n", OnNewPrimary, FastBroker.Protocol.Durability.Written); // no standby yet: local acks

            // 4. The deposed primary returns: it must not serve, it must follow b and cut its unreplicated tail.
            await a.StartAsync();
            var rejoined = await a.WaitForAsync(
                s => s.IsStandby && s.Epoch == epoch2 && s.ReplicaOf(Topic) is { Next: Replicated + OnNewPrimary, Durable: Replicated + OnNewPrimary },
                "a rejoins as standby of the new epoch and ends where b ends");
            Assert.Equal("b", rejoined.Replica!.PrimaryId);
            var cut = Assert.Single(rejoined.Replica.Truncations, t => t.Contains($"'{Topic}'", StringComparison.Ordinal));
            Assert.Contains($"cut at offset {Replicated}", cut, StringComparison.Ordinal);
            var onB = await TopicContent.ReadAsync(b.ClientEndpoint, Topic);
            AssertContent(onB, "after the rejoin, on b");
            output.WriteLine($"a rejoined at epoch {epoch2}: {cut}");

            // 5. Fail back: b dies, a is promoted and serves b's history (the local-only tail stays gone).
            b.Kill();
            await a.WaitForAsync(s => s.Replica is { Connected: false }, "a sees b gone");
            (status, body) = await a.PromoteAsync();
            Assert.True(status == 200, $"POST /promote on a: {status} {body}");
            var epoch3 = (await a.WaitForAsync(s => s.IsPrimary, "a is primary again")).Epoch;
            Assert.True(epoch3 > epoch2, $"fail-back epoch {epoch3} after {epoch2}");
            var onA = await TopicContent.ReadAsync(a.ClientEndpoint, Topic);
            AssertContent(onA, "after the fail-back, on a");
            await PublishAsync(a, "f", 10, FastBroker.Protocol.Durability.Written);
            onA = await TopicContent.ReadAsync(a.ClientEndpoint, Topic);
            Assert.Equal(Replicated + OnNewPrimary + 10, onA.Head);
            Assert.Equal("f0009", onA.At(onA.Head - 1));
        }
        catch
        {
            output.WriteLine(pair.Logs);
            throw;
        }
    }

    /// <summary>r0000…, then n0000…: what b had from a plus what b wrote; none of a's local-only l…</summary>
    private static void AssertContent(TopicContent content, string when)
    {
        Assert.True(content.Tail == 0, $"{when}: tail {content.Tail}");
        Assert.True(content.Head == Replicated + OnNewPrimary, $"{when}: head {content.Head}, expected {Replicated + OnNewPrimary}");
        content.AssertRun(0, "r", Replicated);
        content.AssertRun(Replicated, "n", OnNewPrimary);

        Assert.DoesNotContain(content.Payloads, p => p.StartsWith('l'));
    }

    private static Task PublishAsync(NodeProcess node, string prefix, int count, FastBroker.Protocol.Durability durability) =>
        PrefixedMessages.PublishAsync(node, Topic, prefix, count, durability);
}
