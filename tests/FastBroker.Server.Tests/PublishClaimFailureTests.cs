using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// A PUBLISH_BATCH whose handling fails with an exception the server has no code for after its input-ring slots were
/// claimed (made real through <see cref="BrokerOptions.TopicFileStep"/>: the auto-creation of the topic <c>boom</c>
/// throws an <see cref="InvalidOperationException"/>) closes that connection with ERROR <see cref="ErrorCode.Internal"/>
/// naming the failure, its claimed messages reported failed, never stored; every other connection is still served: the
/// claim's slots are published, so the broker's pipeline does not wait on them for ever (docs/server.md).
/// </summary>
public class PublishClaimFailureTests
{
    [Fact]
    public async Task A_batch_failing_unexpectedly_after_its_claim_closes_its_connection_with_Internal_and_other_connections_are_confirmed()
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with
        {
            TopicFileStep = step =>
            {
                if (step.StartsWith("create directory", StringComparison.Ordinal) && step.EndsWith("boom", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException("test: boom");
                }
            },
        });
        await using var c = await f.ConnectAsync();
        await c.SendAsync(w =>
        {
            var batch = new PublishBatchWriter(w, 64 * 1024, firstRequestId: 10);
            Assert.True(batch.TryAdd("known"u8, "a"u8.ToArray()));
            Assert.True(batch.TryAdd("boom"u8, "b"u8.ToArray()));
            Assert.True(batch.TryAdd("known"u8, "c"u8.ToArray()));
            batch.Complete();
        });
        var frames = await c.ReadUntilClosedAsync();

        // Another connection's publish is confirmed: the failed claim left no slot of the input ring unpublished.
        await using (var other = await f.ConnectAsync())
        {
            await other.PublishAsync(1, "known", "from another connection");
            ServerFrame? confirm = null;
            try
            {
                confirm = await other.TryReadAsync(TimeSpan.FromSeconds(20));
            }
            catch (TimeoutException)
            {
            }

            Assert.True(confirm is { Type: FrameType.Confirm }, $"another connection's PUBLISH was not confirmed within 20 s (the broker's input ring waits on the failed batch's claimed slots): {confirm?.ToString() ?? "nothing"}");
            Assert.Equal((ErrorCode.None, 0UL), (confirm!.Ranges.Single().Status, confirm.Ranges.Single().FirstOffset));
        }

        var error = frames.LastOrDefault();
        Assert.True(
            error is { Type: FrameType.Error, ErrorCode: ErrorCode.Internal, CloseConnection: true, RequestId: 0 } && error.ErrorReason.Contains("InvalidOperationException: test: boom", StringComparison.Ordinal),
            $"expected ERROR Internal with CLOSE naming the failure last, got: {string.Join(" | ", frames)}");

        // The message added before the failure and the one being added are answered, not stored; the one after was never taken.
        var ranges = frames.Where(r => r.Type == FrameType.Confirm).SelectMany(r => r.Ranges).ToList();
        Assert.Equal([(10UL, ErrorCode.Internal), (11UL, ErrorCode.Internal)], ranges.SelectMany(r => Enumerable.Range(0, (int)r.Count).Select(i => (r.FirstRequestId + (ulong)i, r.Status))));
        Assert.False(f.Broker.TopicExists("boom"));
        Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == "known").Head);
    }
}
