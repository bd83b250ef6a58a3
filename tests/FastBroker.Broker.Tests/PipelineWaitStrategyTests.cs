using FastBroker.Engine;
using FastBroker.Ring;

namespace FastBroker.BrokerTests;

/// <summary>
/// The pipeline thread's default wait yields long enough (~100-300 µs) not to block between messages at 10k msg/s:
/// a wake-up from a block costs the message 20-40 µs on this project's VMs (perf-reports/broker.md). The ring's own
/// default (20 yields) blocked before every message at that rate.
/// </summary>
public class PipelineWaitStrategyTests
{
    [Fact]
    public void The_default_pipeline_wait_yields_for_a_gap_of_100_us_before_it_blocks()
    {
        var strategy = Assert.IsType<HybridWaitStrategy>(Pipeline.CreateWaitStrategy(BrokerOptions.Default.WaitStrategy));
        Assert.Equal(Pipeline.PipelineYieldTries, strategy.YieldTries);
        Assert.True(strategy.YieldTries >= 10 * HybridWaitStrategy.DefaultYieldTries, $"{strategy.YieldTries} yields");
        Assert.True(strategy.IsBlockingStrategy, "it still blocks when idle");
    }

    [Theory]
    [InlineData(BrokerWaitStrategy.Blocking, typeof(BlockingWaitStrategy))]
    [InlineData(BrokerWaitStrategy.Yielding, typeof(YieldingWaitStrategy))]
    [InlineData(BrokerWaitStrategy.BusySpin, typeof(BusySpinWaitStrategy))]
    public void The_other_strategies_are_as_chosen(BrokerWaitStrategy chosen, Type expected) =>
        Assert.IsType(expected, Pipeline.CreateWaitStrategy(chosen));
}
