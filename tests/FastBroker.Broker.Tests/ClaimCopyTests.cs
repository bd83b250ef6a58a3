using FastBroker.Testing;
using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// <see cref="PublishClaim"/> is a struct: a copy (the claim passed by value to a method that commits it, while the
/// caller's <c>finally</c> disposes its own) shares the claim's slots. Once any copy has committed or abandoned the claim,
/// another copy must neither publish its slots again nor write into them: the journaler is held behind an uncommitted slot
/// of another thread (<see cref="HeldSlot"/>) so the committed messages are still in the ring, unread, when
/// the stale copy acts.
/// </summary>
public class ClaimCopyTests
{
    [Fact]
    public async Task Disposing_a_claim_whose_copy_committed_it_leaves_its_messages_as_committed()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("a");
        var sink = new RecordingSink();

        using (var held = new HeldSlot(f.Broker, "a", "held"))
        {
            FillThenCommitThroughACopyThenDispose(f.Broker, sink);
            held.Release();
            Assert.Null(held.Error);
        }

        var outcomes = await sink.WaitForAsync(2);
        Assert.Equal([(1UL, 1L, BrokerErrorCode.None), (2UL, 2L, BrokerErrorCode.None)], outcomes.Select(o => (o.Token, o.Offset, o.Error)));
        Assert.Equal(3, await f.Broker.PublishAsync("a", "after"u8.ToArray())); // held, one, two: nothing lost, nothing twice
    }

    [Fact]
    public async Task A_stale_copy_of_a_committed_claim_refuses_to_add_or_commit_and_touches_no_slot()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("a");
        var sink = new RecordingSink();

        using (var held = new HeldSlot(f.Broker, "a", "held"))
        {
            var errors = CommitThenUseAStaleCopy(f.Broker, sink);
            Assert.Equal(["Add: InvalidOperationException", "Commit: InvalidOperationException"], errors);
            held.Release();
            Assert.Null(held.Error);
        }

        var outcomes = await sink.WaitForAsync(1);
        Assert.Equal((1UL, 1L, BrokerErrorCode.None), outcomes.Select(o => (o.Token, o.Offset, o.Error)).Single());
        Assert.Equal(2, await f.Broker.PublishAsync("a", "after"u8.ToArray())); // held, one: the stale copy stored nothing
    }

    [Fact]
    public void The_default_claim_a_false_TryBeginPublish_leaves_disposes_as_a_no_op_and_refuses_adds()
    {
        var claim = default(PublishClaim);
        claim.Dispose();
        Assert.Equal(0, claim.Count);
        var thrown = Record.Exception(() =>
        {
            var c = default(PublishClaim);
            c.AddFailed(BrokerErrorCode.InvalidArgument, "x", null, 0);
        });
        Assert.True(thrown is InvalidOperationException, $"Add on the default claim: {thrown}");
    }

    /// <summary>The pattern of a helper that takes the claim by value and commits it, and a caller that disposes its own in a <c>finally</c>.</summary>
    private static void FillThenCommitThroughACopyThenDispose(Broker broker, RecordingSink sink)
    {
        Assert.True(broker.TryBeginPublish(2, out var claim));
        try
        {
            claim.Add("a"u8, default, default, Seq("one"), default, sink, 1);
            claim.Add("a"u8, default, default, Seq("two"), default, sink, 2);
            CommitByValue(claim);
        }
        finally
        {
            claim.Dispose();
        }
    }

    private static void CommitByValue(PublishClaim claim) => claim.Commit();

    private static List<string> CommitThenUseAStaleCopy(Broker broker, RecordingSink sink)
    {
        Assert.True(broker.TryBeginPublish(1, out var claim));
        var stale = claim;
        claim.Add("a"u8, default, default, Seq("one"), default, sink, 1);
        claim.Commit();

        var errors = new List<string>();
        try
        {
            stale.Add("a"u8, default, default, Seq("overwritten"), default, sink, 9);
        }
        catch (Exception e)
        {
            errors.Add($"Add: {e.GetType().Name}");
        }

        try
        {
            stale.Commit();
        }
        catch (Exception e)
        {
            errors.Add($"Commit: {e.GetType().Name}");
        }

        stale.Dispose();
        return errors;
    }
}
