using System.Runtime.CompilerServices;
using FastBroker.Testing;

namespace FastBroker.Ring.Tests;

public class WaitStrategyTests
{
    public static TheoryData<string> Strategies => new() { "busy-spin", "yielding", "sleeping", "blocking", "hybrid", "blocking-timeout", "hybrid-timeout", "yielding-coalescing", "busy-spin-coalescing" };

    private static IWaitStrategy Create(string name) => name switch
    {
        "busy-spin" => new BusySpinWaitStrategy(),
        "yielding" => new YieldingWaitStrategy(),
        "sleeping" => new SleepingWaitStrategy(),
        "blocking" => new BlockingWaitStrategy(),
        "hybrid" => new HybridWaitStrategy(),
        "blocking-timeout" => new BlockingWaitStrategy(TimeSpan.FromMilliseconds(5)),
        "hybrid-timeout" => new HybridWaitStrategy(TimeSpan.FromMilliseconds(5)),
        "yielding-coalescing" => new YieldingWaitStrategy(new BatchCoalescing(64, TimeSpan.FromMicroseconds(50))),
        "busy-spin-coalescing" => new BusySpinWaitStrategy(new BatchCoalescing(64, TimeSpan.FromMicroseconds(50))),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Strategies))]
    public void Every_strategy_delivers_a_stream_and_a_trickle_and_halts(string name)
    {
        var ring = new ValueRingBuffer<LongValue>(64, ProducerType.Single, Create(name));
        var recorder = new Recorder();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(recorder));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "ws-consumer");

        for (var i = 0; i < 10_000; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
        }

        // A trickle: one event at a time, each waited for, so the consumer goes back to waiting in between.
        for (var i = 10_000; i < 10_020; i++)
        {
            var seq = ring.Next();
            ring[seq].Value = i;
            ring.Publish(seq);
            Eventually.True(() => recorder.Count == i + 1, $"event {i} delivered");
        }

        processor.Halt();
        Eventually.Joined(thread);
        recorder.AssertClean();
        Assert.Equal(1, recorder.Shutdowns);
    }

    [Theory]
    [InlineData("blocking")]
    [InlineData("hybrid")]
    public void An_idle_consumer_with_a_blocking_strategy_sleeps_instead_of_spinning(string name)
    {
        var ring = new ValueRingBuffer<LongValue>(64, ProducerType.Single, Create(name));
        var recorder = new Recorder();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(recorder));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "idle-consumer");

        // Blocked in Monitor.Wait = WaitSleepJoin; a spinning or yielding thread stays Running.
        Eventually.True(() => (thread.ThreadState & ThreadState.WaitSleepJoin) != 0, "idle consumer is asleep");

        ring.Publish(ring.Next());
        Eventually.True(() => recorder.Count == 1, "a publish wakes it");
        Eventually.True(() => (thread.ThreadState & ThreadState.WaitSleepJoin) != 0, "asleep again once idle");

        processor.Halt();
        Eventually.Joined(thread);
    }

    [Theory]
    [MemberData(nameof(Strategies))]
    public void Alerting_a_barrier_ends_a_wait(string name)
    {
        var ring = new ValueRingBuffer<LongValue>(8, ProducerType.Multi, Create(name));
        var barrier = ring.NewBarrier();
        long result = 0;
        var waiter = new Thread(() =>
        {
            long r;
            while ((r = barrier.WaitFor(0)) == WaitResult.TimedOut)
            {
            }

            Volatile.Write(ref result, r);
        })
        { IsBackground = true, Name = "alert-waiter" };
        waiter.Start();
        barrier.Alert();
        Eventually.Joined(waiter);
        Assert.Equal(WaitResult.Alerted, result);
        Assert.True(barrier.IsAlerted);
        barrier.ClearAlert();
        Assert.False(barrier.IsAlerted);
    }

    public static TheoryData<string, string> TimeoutsMeaningNone => new()
    {
        { "blocking", "infinite" },
        { "blocking", "max" },
        { "hybrid", "infinite" },
        { "hybrid", "max" },
    };

    private static IWaitStrategy CreateWithTimeout(string name, TimeSpan? timeout)
        => name == "blocking" ? new BlockingWaitStrategy(timeout) : new HybridWaitStrategy(timeout);

    [Theory]
    [MemberData(nameof(TimeoutsMeaningNone))]
    public void An_infinite_or_unrepresentably_long_timeout_waits_for_the_publish_instead_of_timing_out_at_once(string name, string timeout)
    {
        var strategy = CreateWithTimeout(name, timeout == "infinite" ? Timeout.InfiniteTimeSpan : TimeSpan.MaxValue);
        var ring = new ValueRingBuffer<LongValue>(8, ProducerType.Single, strategy);
        var barrier = ring.NewBarrier();
        long result = 0;
        var waiter = new Thread(() => Volatile.Write(ref result, barrier.WaitFor(0))) { IsBackground = true, Name = "no-timeout-waiter" };
        waiter.Start();

        // Asleep (the fix) or already returned (a wait that timed out at once): either way publish only then.
        Eventually.True(() => (waiter.ThreadState & (ThreadState.WaitSleepJoin | ThreadState.Stopped)) != 0, "waiter blocked or returned");
        ring.Publish(ring.Next());
        Eventually.Joined(waiter);
        Assert.Equal(0, Volatile.Read(ref result));
    }

    [Theory]
    [InlineData("blocking")]
    [InlineData("hybrid")]
    public void A_zero_or_negative_timeout_is_refused(string name)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateWithTimeout(name, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => CreateWithTimeout(name, TimeSpan.FromMilliseconds(-5)));
        Assert.NotNull(CreateWithTimeout(name, TimeSpan.FromTicks(1)));
        Assert.NotNull(CreateWithTimeout(name, null));
    }

    private struct TimeoutCounter(StrongBox<int> timeouts) : IValueEventHandler<LongValue>
    {
        public void OnEvent(ref LongValue data, long sequence, bool endOfBatch)
        {
        }

        public void OnBatchStart(long batchSize)
        {
        }

        public void OnTimeout(long sequence) => Interlocked.Increment(ref timeouts.Value);
    }

    [Theory]
    [InlineData("blocking-timeout")]
    [InlineData("hybrid-timeout")]
    public void A_wait_strategy_timeout_reaches_the_handler(string name)
    {
        var ring = new ValueRingBuffer<LongValue>(8, ProducerType.Single, Create(name));
        var timeouts = new StrongBox<int>();
        var processor = EventProcessors.Create(ring, ring.NewBarrier(), new TimeoutCounter(timeouts));
        ring.AddGatingSequences(processor.Sequence);
        var thread = EventProcessors.StartThread(processor, "timeout-consumer");
        Eventually.True(() => Volatile.Read(ref timeouts.Value) >= 2, "timeouts reported while idle");
        processor.Halt();
        Eventually.Joined(thread);
    }

    [Fact]
    public void A_downstream_stage_on_a_blocking_strategy_is_woken_by_its_upstream_not_only_by_publishers()
    {
        var ring = new ValueRingBuffer<LongValue>(8, ProducerType.Single, new BlockingWaitStrategy());
        var first = new Recorder();
        var second = new Recorder();
        var a = EventProcessors.Create(ring, ring.NewBarrier(), new RecordingValueHandler(first));
        var b = EventProcessors.Create(ring, ring.NewBarrier(a.Sequence), new RecordingValueHandler(second));
        ring.AddGatingSequences(b.Sequence);
        var tb = EventProcessors.StartThread(b, "stage-b");
        Eventually.True(() => (tb.ThreadState & ThreadState.WaitSleepJoin) != 0, "b asleep");

        // Publish while a is not running: b must stay asleep on a, then wake when a catches up.
        ring.Publish(ring.Next());
        var ta = EventProcessors.StartThread(a, "stage-a");
        Eventually.True(() => second.Count == 1, "b woke after a processed the event");
        a.Halt();
        b.Halt();
        Eventually.Joined(ta);
        Eventually.Joined(tb);
    }
}
