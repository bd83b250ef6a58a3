using FastBroker.Replication;

namespace FastBroker.ReplicationTests;

/// <summary>
/// The <c>status</c> of a pair node's <c>/primary</c>, <c>/standby</c>, <c>/health</c> and <c>/status</c>
/// (<see cref="ReplicatedNode.StatusOf"/>), for the states a test cannot hold a real node in (a promotion's opening of the
/// journals passes in milliseconds); <c>AdminRoleCheckTests</c> holds a real one promoting.
/// </summary>
public class NodeStatusTests
{
    /// <summary>
    /// The status every check and <c>/status</c> give, decided in one place: <c>promoting</c> for a node that has taken up
    /// a promotion and not finished it, a standby's (asked for by hand, or granted by the witness and becoming primary)
    /// and a starting node's becoming primary alike (they said <c>standby</c> and <c>starting</c>); stopping and fenced
    /// before it, and <c>ok</c> only on a primary that serves.
    /// </summary>
    [Theory]
    [InlineData(NodeRole.Standby, false, false, false, true, false, "promoting")] // granted the lease, or promoted: opening the journals
    [InlineData(NodeRole.Standby, false, false, false, false, true, "promoting")] // asked for by hand, asking the witness
    [InlineData(NodeRole.Starting, false, false, false, true, false, "promoting")] // decided it is primary: opening the journals
    [InlineData(NodeRole.Starting, false, false, false, false, false, "starting")]
    [InlineData(NodeRole.Standby, false, false, false, false, false, "standby")]
    [InlineData(NodeRole.Standby, true, false, false, true, true, "stopping")]
    [InlineData(NodeRole.Fenced, false, false, false, false, false, "fenced")]
    [InlineData(NodeRole.Fenced, false, false, false, true, false, "promoting")] // a stepped-down node becoming primary again
    [InlineData(NodeRole.Primary, false, true, true, false, false, "fenced")]
    [InlineData(NodeRole.Primary, false, false, true, true, false, "ok")] // serving; the flag clears as the promotion returns
    [InlineData(NodeRole.Primary, false, false, false, false, false, "primary")]
    public void Status_is_promoting_from_when_a_promotion_is_taken_up_until_the_node_serves(NodeRole role, bool stopping, bool steppingDown, bool serving, bool becomingPrimary, bool promotionTakenUp, string expected) =>
        Assert.Equal(expected, ReplicatedNode.StatusOf(role, stopping, steppingDown, serving, becomingPrimary, promotionTakenUp));
}
