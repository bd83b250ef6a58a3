using FastBroker.Client;
using FastBroker.Protocol;

namespace FastBroker.ClientTests;

/// <summary>
/// A CONFIRM range carries a status code and no text: the client's exception says what the code means for a message,
/// so that a refusal names its likely cause.
/// </summary>
public class RefusalReasonTests
{
    [Fact]
    public async Task A_publish_asking_for_Fsynced_on_a_Written_topic_says_the_topic_must_be_configured_Fsynced()
    {
        await using var f = await ServerFixture.StartAsync();
        var client = await f.ConnectAsync();

        var error = await Assert.ThrowsAsync<BrokerClientException>(async () =>
            await client.PublishAsync("orders", new byte[] { 1 }, new PublishOptions { Durability = FastBroker.Protocol.Durability.Fsynced }));

        Assert.Equal(ErrorCode.InvalidArgument, error.ErrorCode);
        Assert.Contains("the server refused a message to 'orders': ", error.Message, StringComparison.Ordinal);
        Assert.Contains("Fsynced needs a topic configured Fsynced", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await client.PublishAsync("orders", new byte[] { 2 })); // the refused one took no offset
    }

    [Fact]
    public async Task A_publish_to_an_unknown_topic_with_auto_create_off_says_topics_are_not_created_on_first_use()
    {
        await using var f = await ServerFixture.StartAsync(broker: o => o with { AutoCreateTopics = false });
        var client = await f.ConnectAsync();

        var error = await Assert.ThrowsAsync<BrokerClientException>(async () => await client.PublishAsync("nowhere", new byte[] { 1 }));

        Assert.Equal(ErrorCode.UnknownTopic, error.ErrorCode);
        Assert.Contains("does not create topics on first use", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ErrorCode.InvalidName)]
    [InlineData(ErrorCode.UnknownTopic)]
    [InlineData(ErrorCode.MessageTooLarge)]
    [InlineData(ErrorCode.StorageFull)]
    [InlineData(ErrorCode.StorageError)]
    [InlineData(ErrorCode.ResourceExhausted)]
    [InlineData(ErrorCode.Closed)]
    [InlineData(ErrorCode.InvalidArgument)]
    [InlineData(ErrorCode.Forbidden)]
    public void Every_status_a_CONFIRM_range_may_carry_for_a_message_has_a_reason(ErrorCode status) =>
        Assert.StartsWith(": ", BrokerClient.RefusalReason(status), StringComparison.Ordinal);
}
