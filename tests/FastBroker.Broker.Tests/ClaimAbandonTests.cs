using static FastBroker.BrokerTests.ClaimPublishTests;

namespace FastBroker.BrokerTests;

/// <summary>
/// A <see cref="PublishClaim"/> that fails with an exception the broker has no code for (a bug, an
/// <see cref="OutOfMemoryException"/>) after its slots were reserved still publishes every one of them, each failed, so
/// the input ring's consumers never wait on a sequence nobody publishes: one bad publish must not stall every publisher
/// of the broker. The failure is made real through <see cref="BrokerOptions.TopicFileStep"/>: the auto-creation of the
/// topic <c>boom</c> throws an <see cref="InvalidOperationException"/> from inside <c>TryGetForUse</c>.
/// </summary>
public class ClaimAbandonTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_claim_whose_topic_resolution_throws_unexpectedly_fails_its_slots_and_the_broker_keeps_confirming()
    {
        await using var f = await StartThrowingAsync();
        f.Broker.CreateTopic("known");
        var sink = new RecordingSink();

        Assert.True(f.Broker.TryBeginPublish(3, out var claim));
        claim.Add("known"u8, default, default, Seq("one"), default, sink, 1);
        Exception? thrown = null;
        try
        {
            claim.Add("boom"u8, default, default, Seq("two"), default, sink, 2);
        }
        catch (Exception e)
        {
            thrown = e;
        }

        Assert.True(thrown is InvalidOperationException { Message: "test: boom" }, $"the caller gets the unexpected exception as it is, got: {thrown}");

        // The claim is over: using it again is a usage error, not a second publish of its slots.
        thrown = null;
        try
        {
            claim.Commit();
        }
        catch (Exception e)
        {
            thrown = e;
        }

        Assert.True(thrown is InvalidOperationException, $"a Commit after the failure: {thrown}");

        // Another topic, another publisher: confirmed, not stuck behind the claim's reserved slots.
        var next = f.Broker.PublishAsync("known", "after"u8.ToArray()).AsTask();
        Assert.True(await Completes(next), $"a PublishAsync after the failed claim was not confirmed within {s_deadline.TotalSeconds} s: the input ring waits on a slot that was reserved and never published");
        Assert.Equal(0, await next); // nothing of the failed claim was stored

        // Every message the claim took is told: not stored, with the code the wire calls Internal, in order.
        var outcomes = await sink.WaitForAsync(2);
        Assert.Equal([1UL, 2UL], outcomes.Select(o => o.Token));
        Assert.All(outcomes, o => Assert.Equal(PublishClaim.AbandonedCode, o.Error));
        Assert.All(outcomes, o => Assert.Contains("InvalidOperationException: test: boom", o.Reason, StringComparison.Ordinal));

        Assert.False(f.Broker.TopicExists("boom"));
        Assert.True(f.Broker.TryPublish("known", "fire"u8));
        Assert.True(await Completes(f.Broker.PublishAsync("known", "last"u8.ToArray()).AsTask()), "a later publish");
    }

    [Fact]
    public async Task A_caller_that_throws_between_its_adds_and_disposes_the_claim_leaves_no_slot_unpublished()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("known");
        var sink = new RecordingSink();

        Assert.True(f.Broker.TryBeginPublish(4, out var claim));
        try
        {
            claim.Add("known"u8, default, default, Seq("one"), default, sink, 1);
            claim.AddFailed(BrokerErrorCode.InvalidArgument, "decided by the caller", sink, 2);
            throw new InvalidOperationException("test: the caller's own failure");
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            claim.Dispose();
        }

        var next = f.Broker.PublishAsync("known", "after"u8.ToArray()).AsTask();
        Assert.True(await Completes(next), $"a PublishAsync after the disposed claim was not confirmed within {s_deadline.TotalSeconds} s");
        Assert.Equal(0, await next);

        // The message already added is failed; the caller's own refusal keeps its code.
        var outcomes = await sink.WaitForAsync(2);
        Assert.Equal([(1UL, PublishClaim.AbandonedCode), (2UL, BrokerErrorCode.InvalidArgument)], outcomes.Select(o => (o.Token, o.Error)));
    }

    [Fact]
    public async Task A_commit_of_a_claim_filled_short_fails_it_instead_of_leaving_its_slots_reserved()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("known");
        var sink = new RecordingSink();

        Assert.True(f.Broker.TryBeginPublish(2, out var claim));
        claim.Add("known"u8, default, default, Seq("one"), default, sink, 1);
        Exception? thrown = null;
        try
        {
            claim.Commit();
        }
        catch (Exception e)
        {
            thrown = e;
        }

        Assert.IsType<InvalidOperationException>(thrown);
        claim.Dispose(); // a no-op: the failed commit already published the slots
        var next = f.Broker.PublishAsync("known", "after"u8.ToArray()).AsTask();
        Assert.True(await Completes(next), $"a PublishAsync after the short commit was not confirmed within {s_deadline.TotalSeconds} s");
        Assert.Equal(0, await next);
        Assert.Equal(PublishClaim.AbandonedCode, Assert.Single(await sink.WaitForAsync(1)).Error);
    }

    private static async Task<bool> Completes(Task task)
    {
        var done = await Task.WhenAny(task, Task.Delay(s_deadline));
        return done == task;
    }

    private static Task<BrokerFixture> StartThrowingAsync() => BrokerFixture.StartAsync(o => o with
    {
        TopicFileStep = step =>
        {
            if (step.StartsWith("create directory", StringComparison.Ordinal) && step.EndsWith("boom", StringComparison.Ordinal))
            {
                throw new InvalidOperationException("test: boom");
            }
        },
    });
}
