using FastBroker.Testing;

namespace FastBroker.BrokerTests;

public class BadInputTests
{
    [Fact]
    public async Task Unknown_topic_with_auto_creation_off_is_a_typed_error_and_the_broker_keeps_serving()
    {
        await using var f = await BrokerFixture.StartAsync(o => o with { AutoCreateTopics = false });
        var b = f.Broker;
        var ex = await Assert.ThrowsAsync<BrokerException>(async () => await b.PublishAsync("nope", BrokerFixture.Utf8("x")));
        Assert.Equal(BrokerErrorCode.UnknownTopic, ex.Code);
        Assert.Contains("nope", ex.Message, StringComparison.Ordinal);
        Assert.Equal(BrokerErrorCode.UnknownTopic, Assert.Throws<BrokerException>(() => b.Subscribe("nope")).Code);

        b.CreateTopic("yes");
        Assert.Equal(0, await b.PublishAsync("yes", BrokerFixture.Utf8("fine")));
    }

    [Fact]
    public async Task Oversize_messages_and_invalid_names_are_refused_with_reasons()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("small", TopicOptions.Default with { MaxMessageBytes = 100, SegmentBytes = 1 << 20 });
        var big = Assert.Throws<BrokerException>(() => b.TryPublish("small", new byte[101]));
        Assert.Equal(BrokerErrorCode.MessageTooLarge, big.Code);
        Assert.Contains("100-byte limit", big.Message, StringComparison.Ordinal);

        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.TryPublish("bad topic", [1])).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.TryPublish("a.*", [1])).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.Subscribe("a..b")).Code);
        Assert.Equal(BrokerErrorCode.InvalidName, Assert.Throws<BrokerException>(() => b.JoinGroup("jobs", "bad group")).Code);
        Assert.Equal(BrokerErrorCode.InvalidArgument, Assert.Throws<BrokerException>(() => b.Subscribe("x", new SubscriptionOptions { Start = StartPosition.Committed })).Code);

        // Still serving.
        Assert.True(b.TryPublish("small", new byte[100]));
        Assert.Equal(1, await b.PublishAsync("small", new byte[10]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task A_subscription_batch_size_below_one_is_refused(int batchSize)
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var options = new SubscriptionOptions { Start = StartPosition.Earliest, BatchSize = batchSize };

        // Accepted, ReadAllAsync, ConsumeAsync and an inline handler fetched 0 per round and so delivered nothing, ever.
        var pulled = Assert.Throws<BrokerException>(() => b.Subscribe("jobs", options));
        Assert.Equal(BrokerErrorCode.InvalidArgument, pulled.Code);
        Assert.Contains("BatchSize", pulled.Message, StringComparison.Ordinal);
        var inline = Assert.Throws<BrokerException>(() => b.SubscribeInline("jobs", new Recorder(new Collected()), options));
        Assert.Equal(BrokerErrorCode.InvalidArgument, inline.Code);
        Assert.Empty(b.GetSnapshot().Subscriptions);

        // Still serving, and 1 is a valid batch size.
        await b.PublishAsync("jobs", BrokerFixture.Utf8("job"));
        using var one = b.Subscribe("jobs", options with { BatchSize = 1 });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var m in one.ReadAllAsync(cts.Token))
        {
            Assert.Equal("job", m.PayloadText);
            break;
        }
    }

    /// <summary>
    /// Fetch(max) with max below 1 returned 0 having examined nothing: the answer for "nothing available", so a loop
    /// computing max wrongly waited for ever on a subscription that had messages.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public async Task A_fetch_of_fewer_than_one_message_is_refused_and_takes_nothing(int max)
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("orders", BrokerFixture.Utf8("o0"));
        using var sub = f.Broker.Subscribe("orders", new SubscriptionOptions { Start = StartPosition.Earliest });
        var c = new Collected();
        var r = new Recorder(c);

        Assert.Equal("max", Assert.Throws<ArgumentOutOfRangeException>(() => sub.Fetch(max, ref r)).ParamName);
        Assert.Equal("max", Assert.Throws<ArgumentOutOfRangeException>(() => sub.Fetch(max, ref r, out _)).ParamName);
        Assert.Equal((0L, 0L), (sub.Delivered, sub.Positions["orders"]));

        Assert.Equal(["o0"], Consume.Drain(sub, 1).Select(m => m.Payload));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public async Task A_member_fetch_of_fewer_than_one_delivery_is_refused_and_takes_nothing(int max)
    {
        await using var f = await BrokerFixture.StartAsync();
        await f.Broker.PublishAsync("jobs", BrokerFixture.Utf8("j0"));
        using var member = f.Broker.JoinGroup("jobs", "workers");
        await Eventually.Completes(member.WaitAsync().AsTask()); // the group has queued the delivery
        var c = new Collected();
        var r = new Recorder(c);

        Assert.Equal("max", Assert.Throws<ArgumentOutOfRangeException>(() => member.Fetch(max, ref r)).ParamName);
        Assert.Empty(c.Items);

        Eventually.True(() => member.Fetch(1, ref r) == 1, "the delivery is still there");
        Assert.Equal(("j0", 1), (c.Items.Single().Payload, c.Items.Single().DeliveryCount)); // the refused fetch was no attempt
    }

    [Fact]
    public async Task Group_and_durable_names_too_long_for_their_state_files_are_invalid_names_not_storage_errors()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        Assert.Equal(0, await b.PublishAsync("jobs", BrokerFixture.Utf8("job")));

        // A group's state file is "<name>.state", created as "<name>.state.creating": a file name has at most 255 bytes.
        foreach (var length in new[] { TopicName.MaxStateNameLength + 1, TopicName.MaxLength })
        {
            var group = Assert.Throws<BrokerException>(() => b.JoinGroup("jobs", new string('g', length)));
            Assert.Equal(BrokerErrorCode.InvalidName, group.Code);
            Assert.Contains($"longer than {TopicName.MaxStateNameLength} characters", group.Message, StringComparison.Ordinal);

            var durable = Assert.Throws<BrokerException>(() => b.Subscribe("jobs", new SubscriptionOptions { DurableName = new string('d', length) }));
            Assert.Equal(BrokerErrorCode.InvalidName, durable.Code);
            Assert.Contains($"longer than {TopicName.MaxStateNameLength} characters", durable.Message, StringComparison.Ordinal);
        }

        // The longest allowed names work, and survive a reopen.
        using (var member = b.JoinGroup("jobs", new string('g', TopicName.MaxStateNameLength)))
        using (var sub = b.Subscribe("jobs", new SubscriptionOptions { DurableName = new string('d', TopicName.MaxStateNameLength), Start = StartPosition.Earliest }))
        {
            Assert.Equal(new string('g', TopicName.MaxStateNameLength), member.Group);
        }

        Assert.True(File.Exists(Path.Combine(f.DataDirectory, "topics", "jobs", "groups", new string('g', TopicName.MaxStateNameLength) + ".state")));
        Assert.True(File.Exists(Path.Combine(f.DataDirectory, "subscriptions", new string('d', TopicName.MaxStateNameLength) + ".pos")));
    }

    [Fact]
    public async Task A_group_whose_dead_letter_topic_cannot_exist_is_refused_before_it_is_created()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        var longest = new string('j', TopicName.MaxLength);
        Assert.Equal(0, await b.PublishAsync(longest, BrokerFixture.Utf8("job")));

        // "<topic>.dlq" is 253 characters: no topic can have that name, so every dead letter would be dropped.
        var derived = Assert.Throws<BrokerException>(() => b.JoinGroup(longest, "workers"));
        Assert.Equal(BrokerErrorCode.InvalidName, derived.Code);
        Assert.Contains("dead-letter topic", derived.Message, StringComparison.Ordinal);
        Assert.Contains("GroupOptions.DeadLetterTopic", derived.Message, StringComparison.Ordinal);

        var invalid = Assert.Throws<BrokerException>(() => b.JoinGroup(longest, "workers", GroupOptions.Default with { DeadLetterTopic = "dead letters" }));
        Assert.Equal(BrokerErrorCode.InvalidName, invalid.Code);
        Assert.Contains("'dead letters'", invalid.Message, StringComparison.Ordinal);

        var itself = Assert.Throws<BrokerException>(() => b.JoinGroup(longest, "workers", GroupOptions.Default with { DeadLetterTopic = longest }));
        Assert.Equal(BrokerErrorCode.InvalidArgument, itself.Code);

        // Nothing of the refused group was left behind: no state file, and the name is free for a valid one.
        Assert.False(Directory.Exists(Path.Combine(f.DataDirectory, "topics", longest, "groups")) && Directory.EnumerateFiles(Path.Combine(f.DataDirectory, "topics", longest, "groups")).Any());
        using var member = b.JoinGroup(longest, "workers", GroupOptions.Default with { DeadLetterTopic = "jobs.dead" });

        // A later member joins the existing group: its (default) options do not apply, so its derived name is no error.
        using var second = b.JoinGroup(longest, "workers");
        Assert.Equal("workers", second.Group);
    }

    [Fact]
    public async Task Creating_an_existing_topic_with_other_settings_is_a_conflict()
    {
        await using var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("t", TopicOptions.Default with { SegmentBytes = 4 << 20 });
        f.Broker.CreateTopic("t", TopicOptions.Default with { SegmentBytes = 4 << 20 });
        var ex = Assert.Throws<BrokerException>(() => f.Broker.CreateTopic("t", TopicOptions.Default with { Persistent = false }));
        Assert.Equal(BrokerErrorCode.TopicConflict, ex.Code);
    }

    [Fact]
    public async Task A_closed_broker_refuses_publishes()
    {
        var f = await BrokerFixture.StartAsync();
        await f.Broker.DisposeAsync();
        Assert.Equal(BrokerErrorCode.Closed, Assert.Throws<BrokerException>(() => f.Broker.TryPublish("t", [1])).Code);
        await f.DisposeAsync();
    }
}
