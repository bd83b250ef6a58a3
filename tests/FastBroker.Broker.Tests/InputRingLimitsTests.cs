using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The input ring's entry size: every entry is allocated when the broker opens, so InputEntryBytes has an upper bound
/// the broker can allocate (docs/broker.md, "Broker settings").
/// </summary>
public class InputRingLimitsTests
{
    /// <summary>
    /// Any InputEntryBytes of at least 64 passed Validate, and opening allocated it for each of the 2^14 entries (2 GiB
    /// entries: 32 TiB). Validate is called first so that, without the bound, the test fails instead of allocating.
    /// </summary>
    [Theory]
    [InlineData(BrokerOptions.MaxInputEntryBytes + 1)]
    [InlineData(1 << 30)]
    [InlineData(int.MaxValue)]
    public async Task An_input_entry_past_64_KiB_is_refused_naming_InputEntryBytes_before_anything_is_created(int bytes)
    {
        using var dir = new TempDirectory("fastbroker-input-entry");
        var data = Path.Combine(dir.Path, "data");
        var options = BrokerOptions.Default with { DataDirectory = data, InputEntryBytes = bytes };

        var refused = Assert.IsType<BrokerException>(Record.Exception(options.Validate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"InputEntryBytes ({bytes}) must be from 64 to 65536 (64 KiB)", refused.Message, StringComparison.Ordinal);

        var opening = await Assert.ThrowsAsync<BrokerException>(async () => await Broker.OpenAsync(options));
        Assert.Equal(BrokerErrorCode.InvalidArgument, opening.Code);
        Assert.False(Directory.Exists(data), "the refused broker created its data directory");
    }

    [Fact]
    public async Task The_largest_input_entry_is_accepted_and_the_smallest_still_refused()
    {
        Assert.Equal(64 * 1024, BrokerOptions.MaxInputEntryBytes);
        Assert.Contains("InputEntryBytes (63) must be from 64 to 65536", Assert.Throws<BrokerException>(() => (BrokerOptions.Default with { InputEntryBytes = 63 }).Validate()).Message, StringComparison.Ordinal);

        await using var f = await BrokerFixture.StartAsync(o => o with { InputEntryBytes = BrokerOptions.MaxInputEntryBytes, InputRingSize = 64 });
        Assert.Equal(0, await f.Broker.PublishAsync("big", new byte[60_000]));
    }
}
