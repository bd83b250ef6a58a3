using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// Publishers that keep publishing while another thread disposes the broker: <see cref="Broker.DisposeAsync"/> promises
/// that everything accepted is journaled and confirmed. A publish is accepted when <see cref="Broker.TryPublish"/>
/// returns true or <see cref="Broker.PublishAsync"/> completes with an offset; otherwise it is refused with
/// <see cref="BrokerErrorCode.Closed"/>. No third way: a publish left waiting for ever, or accepted and not stored.
/// </summary>
public class CloseRaceTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Publishes_racing_the_close_are_each_stored_or_refused_with_Closed_never_lost_nor_left_waiting()
    {
        using var dir = new TempDirectory("fastbroker-close-race");
        var payload = new byte[16];
        for (var round = 0; round < 10; round++)
        {
            var options = BrokerFixture.Options(Path.Combine(dir.Path, round.ToString(System.Globalization.CultureInfo.InvariantCulture))) with { InputRingSize = 64 };
            var broker = await Broker.OpenAsync(options);
            broker.CreateTopic("t");
            var accepted = 0L;
            var confirmed = 0L;

            // Dedicated threads for the fire-and-forget publishers (more of them than cores: one may be preempted between
            // its check of the close and its claim of a slot), async loops for the confirmed ones.
            var threadsDone = Enumerable.Range(0, 4).Select(i =>
            {
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                new Thread(() =>
                {
                    try
                    {
                        while (true)
                        {
                            if (broker.TryPublish("t", payload))
                            {
                                Interlocked.Increment(ref accepted);
                            }
                            else
                            {
                                Thread.Yield();
                            }
                        }
                    }
                    catch (BrokerException e) when (e.Code == BrokerErrorCode.Closed)
                    {
                        done.SetResult();
                    }
                    catch (Exception e)
                    {
                        done.SetException(e);
                    }
                })
                { IsBackground = true, Name = $"close-race-{i}" }.Start();
                return done.Task;
            }).ToArray();
            var loops = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        await broker.PublishAsync("t", payload);
                        Interlocked.Increment(ref confirmed);
                    }
                }
                catch (BrokerException e) when (e.Code == BrokerErrorCode.Closed)
                {
                }
            })).ToArray();

            await Eventually.TrueAsync(() => Interlocked.Read(ref accepted) + Interlocked.Read(ref confirmed) > 2_000, "the publishers get going", s_deadline);
            await broker.DisposeAsync();
            try
            {
                await Task.WhenAll([.. threadsDone, .. loops]).WaitAsync(s_deadline);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"round {round}: a publisher racing the close was neither confirmed nor refused within {s_deadline.TotalSeconds} s: {loops.Count(l => !l.IsCompleted)} PublishAsync loops and {threadsDone.Count(t => !t.IsCompleted)} TryPublish threads still waiting");
            }

            await using var reopened = await Broker.OpenAsync(options);
            var stored = reopened.GetSnapshot().Topics.Single(t => t.Name == "t").Head;
            Assert.True(stored == accepted + confirmed, $"round {round}: {accepted} publishes accepted by TryPublish and {confirmed} confirmed by PublishAsync before the close, but {stored} stored");
        }
    }

    /// <summary>
    /// The same race made certain: a publisher that passed the close check and claims its slot only after the close
    /// drained the pipeline and stopped the journaler. Here the caller's own list holds <see cref="Broker.PublishBatchAsync"/>
    /// between the two (its <c>Count</c> is read there); a preempted thread does the same for any publish. Before, the
    /// claim succeeded on the stopped ring and the publish waited for a confirmation that never came.
    /// </summary>
    [Fact]
    public async Task A_publish_that_claims_its_slot_after_the_close_drained_the_pipeline_is_refused_with_Closed()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("t");
        var list = new ListHeldAtItsSecondCount([new byte[8], new byte[8]]);
        var publish = Task.Run(async () => await f.Broker.PublishBatchAsync("t", list));
        await list.Held.WaitAsync(s_deadline);
        await f.Broker.DisposeAsync();
        list.Release.SetResult();

        var e = await Assert.ThrowsAsync<BrokerException>(() => publish.WaitAsync(s_deadline));
        Assert.Equal(BrokerErrorCode.Closed, e.Code);
    }

    /// <summary>A list whose second read of <see cref="Count"/> waits for the test (the first is the batch's emptiness check).</summary>
    private sealed class ListHeldAtItsSecondCount(ReadOnlyMemory<byte>[] items) : IReadOnlyList<ReadOnlyMemory<byte>>
    {
        private int _counts;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Held => _held.Task;

        private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Count
        {
            get
            {
                if (Interlocked.Increment(ref _counts) == 2)
                {
                    _held.SetResult();
                    Release.Task.GetAwaiter().GetResult(); // the publisher's own thread, held where a preemption would hold it
                }

                return items.Length;
            }
        }

        public ReadOnlyMemory<byte> this[int index] => items[index];

        public IEnumerator<ReadOnlyMemory<byte>> GetEnumerator() => ((IEnumerable<ReadOnlyMemory<byte>>)items).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => items.GetEnumerator();
    }
}
