using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A broker locks its data directory (an exclusive flock on <c>broker.lock</c>) from its open to its dispose: a second
/// broker in this process on the same directory is refused at once, a directory with no topic yet included (each
/// journal's own lock covers only a persistent topic's journal), and opens once the first is disposed; the lock file
/// stays. Another process and a killed holder: FastBroker.Replication.Tests' DataDirectoryLockCliTests.
/// </summary>
public class DataDirectoryLockTests
{
    [Fact]
    public async Task A_second_broker_on_an_open_data_directory_is_refused_until_the_first_is_disposed()
    {
        using var dir = new TempDirectory("fastbroker-dir-lock");
        var options = BrokerFixture.Options(dir.Path);
        var lockFile = dir.Combine("broker.lock");
        await using (var first = await Broker.OpenAsync(options))
        {
            // No topic, so no journal.lock anywhere: only the directory's own lock can refuse the second.
            Assert.False(Directory.Exists(dir.Combine("topics")) && Directory.EnumerateDirectories(dir.Combine("topics")).Any());
            var refusal = await OpenExpectingRefusalAsync(options);
            Assert.Equal(BrokerErrorCode.ResourceExhausted, refusal.Code);
            var self = string.Create(CultureInfo.InvariantCulture, $"this process (pid {Environment.ProcessId}");
            Assert.True(
                refusal.Message.Contains($"data directory '{dir.Path}' is in use by another broker", StringComparison.Ordinal) && refusal.Message.Contains(self, StringComparison.Ordinal),
                $"expected the directory and the holder ({self}) named: {refusal.Message}");

            // Refused again with the broker still open (the refusal took nothing of the first's).
            await OpenExpectingRefusalAsync(options);
        }

        Assert.True(File.Exists(lockFile), "broker.lock is left in place at the close (never unlinked)");
        await using (var again = await Broker.OpenAsync(options))
        {
            Assert.True(again.IsOpen);
        }

        Assert.True(File.Exists(lockFile));
    }

    /// <summary>Opens a broker with <paramref name="options"/> expecting a refusal: its exception (a broker that opened is disposed, and the test fails).</summary>
    private static async Task<BrokerException> OpenExpectingRefusalAsync(BrokerOptions options)
    {
        Broker? opened = null;
        var e = await Record.ExceptionAsync(async () => opened = await Broker.OpenAsync(options));
        if (opened is not null)
        {
            await opened.DisposeAsync();
        }

        Assert.True(e is BrokerException, $"a second broker on '{options.DataDirectory}' while the first is open: expected a BrokerException, got {(e is null ? "a broker that opened" : e.ToString())}");
        return (BrokerException)e!;
    }
}
