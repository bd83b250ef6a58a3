using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// The input ring's size and entry size: every entry is allocated when the broker opens, so InputRingSize,
/// InputEntryBytes and their product have upper bounds the broker can allocate (docs/broker.md, "Data path").
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

    /// <summary>
    /// Any power of two passed Validate as InputRingSize, and opening allocated an entry object and its
    /// InputEntryBytes for each (2^30 entries of 512 bytes: over 512 GiB). Validate is called first so that, without the
    /// bound, the test fails instead of allocating.
    /// </summary>
    [Theory]
    [InlineData(BrokerOptions.MaxInputRingSize * 2)]
    [InlineData(1 << 28)]
    [InlineData(1 << 30)]
    public async Task An_input_ring_past_2_to_the_24_entries_is_refused_naming_InputRingSize_before_anything_is_created(int entries)
    {
        using var dir = new TempDirectory("fastbroker-input-ring");
        var data = Path.Combine(dir.Path, "data");
        var options = BrokerOptions.Default with { DataDirectory = data, InputRingSize = entries, InputEntryBytes = 64 };

        var refused = Assert.IsType<BrokerException>(Record.Exception(options.Validate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"InputRingSize ({entries}) must be a power of two from 2 to 16777216 (2^24)", refused.Message, StringComparison.Ordinal);

        var opening = await Assert.ThrowsAsync<BrokerException>(async () => await Broker.OpenAsync(options));
        Assert.Equal(BrokerErrorCode.InvalidArgument, opening.Code);
        Assert.False(Directory.Exists(data), "the refused broker created its data directory");
    }

    /// <summary>
    /// Each bound alone let the two multiply past what a broker can allocate: 2^24 entries of 64 KiB are 1 TiB. The
    /// product is refused above 4 GiB by both names and its size; the combinations at the limit pass Validate (they
    /// are not opened: that would allocate 4 GiB).
    /// </summary>
    [Theory]
    [InlineData(1 << 17, BrokerOptions.MaxInputEntryBytes, 8192)]
    [InlineData(BrokerOptions.MaxInputRingSize, BrokerOptions.MaxInputEntryBytes, 1 << 20)]
    [InlineData(BrokerOptions.MaxInputRingSize, 512, 8192)]
    public async Task An_input_ring_whose_entries_take_more_than_4_GiB_is_refused_naming_both_settings(int entries, int bytes, long mib)
    {
        using var dir = new TempDirectory("fastbroker-input-ring-bytes");
        var data = Path.Combine(dir.Path, "data");
        var options = BrokerOptions.Default with { DataDirectory = data, InputRingSize = entries, InputEntryBytes = bytes };

        var refused = Assert.IsType<BrokerException>(Record.Exception(options.Validate));
        Assert.Equal(BrokerErrorCode.InvalidArgument, refused.Code);
        Assert.Contains($"InputRingSize × InputEntryBytes ({entries} × {bytes} = {mib} MiB) must be at most 4096 MiB (4 GiB)", refused.Message, StringComparison.Ordinal);

        await Assert.ThrowsAsync<BrokerException>(async () => await Broker.OpenAsync(options));
        Assert.False(Directory.Exists(data), "the refused broker created its data directory");
    }

    [Fact]
    public async Task The_largest_input_rings_pass_Validate_and_a_smaller_ring_still_opens()
    {
        Assert.Equal(1 << 24, BrokerOptions.MaxInputRingSize);
        Assert.Equal(4L << 30, BrokerOptions.MaxInputRingBytes);
        (BrokerOptions.Default with { InputRingSize = 1 << 16, InputEntryBytes = BrokerOptions.MaxInputEntryBytes }).Validate();
        (BrokerOptions.Default with { InputRingSize = BrokerOptions.MaxInputRingSize, InputEntryBytes = 256 }).Validate();
        (BrokerOptions.Default with { InputRingSize = 1 << 23 }).Validate();
        Assert.Contains("InputRingSize (3) must be a power of two", Assert.Throws<BrokerException>(() => (BrokerOptions.Default with { InputRingSize = 3 }).Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("InputRingSize (1) must be a power of two", Assert.Throws<BrokerException>(() => (BrokerOptions.Default with { InputRingSize = 1 }).Validate()).Message, StringComparison.Ordinal);

        await using var f = await BrokerFixture.StartAsync(o => o with { InputRingSize = 1 << 16 });
        Assert.Equal(0, await f.Broker.PublishAsync("ring", new byte[100]));
    }
}
