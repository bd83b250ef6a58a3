using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>The topic's record of which expired offsets it has counted (<see cref="ExpiredOffsets"/>).</summary>
public class ExpiredOffsetsTests
{
    [Fact]
    public void Each_offset_is_claimed_once_by_consumers_that_skip_it_in_any_order()
    {
        var claimed = new ExpiredOffsets();
        long[] offsets = [0, 31, 32, 5_000, 65_535, 65_536, 1_000_000];
        Assert.All(offsets, o => Assert.True(claimed.TryClaim(o), $"first claim of {o}"));
        Assert.All(offsets.Reverse(), o => Assert.False(claimed.TryClaim(o), $"second claim of {o}"));
        Assert.True(claimed.TryClaim(33), "a neighbour of a claimed offset (32) is its own");
    }

    [Fact]
    public void Consumers_racing_over_the_same_offsets_claim_each_exactly_once()
    {
        var claimed = new ExpiredOffsets();
        const int Consumers = 4, Offsets = 100_000;
        var wins = new int[Consumers];
        Parallel.For(0, Consumers, new ParallelOptions { MaxDegreeOfParallelism = Consumers }, c =>
        {
            for (long o = 0; o < Offsets; o++)
            {
                if (claimed.TryClaim(o))
                {
                    wins[c]++;
                }
            }
        });
        Assert.Equal(Offsets, wins.Sum());
    }

    [Fact]
    public void A_consumer_more_than_a_window_behind_counts_nothing_twice()
    {
        var claimed = new ExpiredOffsets();
        Assert.True(claimed.TryClaim(10));
        Assert.True(claimed.TryClaim(10 + 65_536)); // the same slot, a newer window: it takes the slot over
        Assert.False(claimed.TryClaim(10), "an offset of an evicted window is not counted again");
        Assert.False(claimed.TryClaim(10 + 65_536));
    }
}
