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

    [Fact]
    public void Tokens_of_one_tenant_share_producer_ids_and_names_and_other_tokens_do_not()
    {
        var tokens = AccessPolicy.Build(
        [
            new AccessToken("old", Tenant: "acme"), new AccessToken("new", Tenant: "acme"), new AccessToken("other"), new AccessToken("other2"),
        ]);
        var (old, rotated, other, other2) = (tokens[0].Policy.Scope!, tokens[1].Policy.Scope!, tokens[2].Policy.Scope!, tokens[3].Policy.Scope!);
        Assert.Equal(old.ProducerId(7), rotated.ProducerId(7));
        Assert.Equal(old.Prefix, rotated.Prefix);
        Assert.NotEqual(old.ProducerId(7), other.ProducerId(7));
        Assert.NotEqual(other.ProducerId(7), other2.ProducerId(7));
        Assert.NotEqual(other.ProducerId(7), other.ProducerId(other.ProducerId(7))); // an id read in fb-producer is no way in
        Assert.NotEqual(old.Prefix, other.Prefix);
        Assert.Matches("^_t[0-9a-f]{16}\\.$", old.Prefix);
        Assert.Null(AccessPolicy.AllowAll.Scope);
    }
}
