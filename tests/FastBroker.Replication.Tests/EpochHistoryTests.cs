using FastBroker.Replication.Internal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests;

/// <summary>
/// Where a rejoining node's records stop being the primary's (<see cref="NodeState.DivergenceOffset"/>), for epoch
/// histories of real node state files.
/// </summary>
public sealed class EpochHistoryTests
{
    private const string Topic = "t";

    [Fact]
    public void Two_nodes_that_each_began_the_same_epoch_number_share_only_the_epoch_before_it()
    {
        using var dir = new TempDirectory("fastbroker-history");
        var (a, b) = FollowingPair(dir);

        // Without a witness each is promoted to epoch 2 on its own: a at offset 10, b at offset 5.
        a.BeginEpoch(2, Heads(10), "a");
        b.BeginEpoch(2, Heads(5), "b");

        // b's records from 5 on are its own epoch 2, not a's: cut there, although the epoch numbers match.
        Assert.Equal(5, a.DivergenceOffset(b.Epoch, NodeState.ParseHistory(b.FormatHistory()), Topic));
        Assert.Equal(5, NodeState.Load(dir.Combine("a")).DivergenceOffset(2, NodeState.ParseHistory(b.FormatHistory()), Topic)); // as saved
    }

    [Fact]
    public void A_standby_of_the_current_epoch_has_nothing_to_cut()
    {
        using var dir = new TempDirectory("fastbroker-history");
        var (a, b) = FollowingPair(dir);
        a.BeginEpoch(3, Heads(40), "a");
        b.Follow(3, a.FormatHistory());

        Assert.Null(a.DivergenceOffset(b.Epoch, NodeState.ParseHistory(b.FormatHistory()), Topic));
    }

    [Fact]
    public void A_node_that_led_an_epoch_the_primary_never_saw_is_cut_where_it_began()
    {
        using var dir = new TempDirectory("fastbroker-history");
        var (a, b) = FollowingPair(dir);
        b.BeginEpoch(2, Heads(10), "b"); // b led epoch 2 from offset 10 while cut off
        a.BeginEpoch(3, Heads(15), "a"); // a never saw it, and took epoch 3 at 15

        Assert.Equal(10, a.DivergenceOffset(b.Epoch, NodeState.ParseHistory(b.FormatHistory()), Topic));
    }

    /// <summary>Node a began epoch 1 at offset 0; node b follows it (state files in <paramref name="dir"/>).</summary>
    private static (NodeState A, NodeState B) FollowingPair(TempDirectory dir)
    {
        var a = NodeState.Load(dir.Combine("a"));
        var b = NodeState.Load(dir.Combine("b"));
        a.BeginEpoch(1, Heads(0), "a");
        b.Follow(1, a.FormatHistory());
        return (a, b);
    }

    private static Dictionary<string, long> Heads(long offset) => new(StringComparer.Ordinal) { [Topic] = offset };
}
