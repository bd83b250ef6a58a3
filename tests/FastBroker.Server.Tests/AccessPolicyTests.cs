using FastBroker.Server;
using FastBroker.Server.Internal;

namespace FastBroker.ServerTests;

public class AccessPolicyTests
{
    [Theory]
    [InlineData("orders.>", "orders.eu", true)]
    [InlineData("orders.>", "orders.*", true)]
    [InlineData("orders.>", "orders.eu.>", true)]
    [InlineData("orders.>", "orders", false)]
    [InlineData("orders.>", ">", false)]
    [InlineData("orders.*", "orders.eu", true)]
    [InlineData("orders.*", "orders.*", true)]
    [InlineData("orders.*", "orders.>", false)]
    [InlineData("orders.*", "orders.eu.x", false)]
    [InlineData("orders.eu", "orders.eu", true)]
    [InlineData("orders.eu", "orders.*", false)]
    [InlineData(">", "anything.at.all", true)]
    [InlineData("*.eu", "orders.eu", true)]
    [InlineData("*.eu", "orders.us", false)]
    public void A_subscribe_pattern_is_allowed_only_when_every_topic_it_matches_is_covered(string allowed, string pattern, bool covered)
    {
        Assert.Equal(covered, AccessPolicy.Covers(allowed.Split('.'), pattern.Split('.')));
    }

    [Fact]
    public void Tokens_authenticate_by_exact_bytes_and_carry_their_publish_patterns()
    {
        var tokens = AccessPolicy.Build([new AccessToken("a", PublishPatterns: ["x.>"]), new AccessToken("b")]);
        Assert.Null(AccessPolicy.Authenticate(tokens, "c"u8));
        Assert.Null(AccessPolicy.Authenticate(tokens, "aa"u8));
        Assert.Null(AccessPolicy.Authenticate(tokens, default));
        var a = AccessPolicy.Authenticate(tokens, "a"u8)!;
        Assert.True(a.CanPublish("x.y"u8));
        Assert.False(a.CanPublish("y"u8));
        Assert.True(a.CanPublish("not..valid"u8)); // left to the broker: InvalidName is the better answer
        Assert.True(AccessPolicy.Authenticate(tokens, "b"u8)!.PublishUnrestricted);
    }
}
