using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class TopicPatternTests
{
    [Theory]
    [InlineData("orders.*", "orders.eu", true)]
    [InlineData("orders.*", "orders.eu.fr", false)]
    [InlineData("orders.*", "orders", false)]
    [InlineData("orders.>", "orders.eu", true)]
    [InlineData("orders.>", "orders.eu.fr.paris", true)]
    [InlineData("orders.>", "orders", false)]
    [InlineData("*.eu.>", "orders.eu.fr", true)]
    [InlineData("*.eu.>", "trades.us.fr", false)]
    [InlineData("*", "orders", true)]
    [InlineData("*", "orders.eu", false)]
    [InlineData(">", "a.b.c", true)]
    [InlineData("orders.eu", "orders.eu", true)]
    [InlineData("orders.eu", "orders.eux", false)]
    [InlineData("orders.*.new", "orders.eu.new", true)]
    [InlineData("orders.*.new", "orders.eu.old", false)]
    [InlineData("ord.*", "orders.eu", false)]
    public void Wildcards_route_exactly_what_they_should(string pattern, string topic, bool expected)
    {
        Assert.Equal(expected, TopicPattern.Parse(pattern).Matches(topic));
    }

    [Theory]
    [InlineData("")]
    [InlineData("orders..eu")]
    [InlineData(".orders")]
    [InlineData("orders.")]
    [InlineData("orders.>.eu")]
    [InlineData("ord*")]
    [InlineData("orders.e u")]
    public void Malformed_patterns_are_refused_with_a_reason(string pattern)
    {
        var ex = Assert.Throws<BrokerException>(() => TopicPattern.Parse(pattern));
        Assert.Equal(BrokerErrorCode.InvalidName, ex.Code);
        Assert.Contains("invalid topic pattern", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("orders", true)]
    [InlineData("orders.eu-west_1", true)]
    [InlineData("orders.*", false)]
    [InlineData("orders.>", false)]
    [InlineData("a..b", false)]
    [InlineData("with space", false)]
    [InlineData("ünïcode", false)]
    public void Topic_names_follow_the_rules(string name, bool valid)
    {
        Assert.Equal(valid, TopicName.IsValid(name));
    }

    [Fact]
    public void Overlong_names_are_refused()
    {
        Assert.False(TopicName.IsValid(new string('a', TopicName.MaxLength + 1)));
        Assert.True(TopicName.IsValid(new string('a', TopicName.MaxLength)));
    }

    [Fact]
    public void Matching_does_not_allocate()
    {
        var p = TopicPattern.Parse("orders.*.>");
        var hits = 0;
        var allocated = AllocationMeter.MinBytesPerRound(() => hits = MatchMany(p)); // no Assert inside: xunit's Assert.Equal allocates
        Assert.Equal(100_000, hits);
        Assert.Equal(0, allocated);
    }

    private static int MatchMany(TopicPattern p)
    {
        var hits = 0;
        for (var i = 0; i < 100_000; i++)
        {
            hits += p.Matches("orders.eu.fr") ? 1 : 0;
        }

        return hits;
    }
}
