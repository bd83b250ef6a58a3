using System.Collections.Concurrent;
using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// A durable subscription whose position file exists but holds nothing (its data lost to a power loss after the file
/// was created or renamed, as on a standby's copy) is not a new subscription: a fallback of Latest would skip every
/// message it had not committed.
/// </summary>
public class PositionFileRecoveryTests
{
    [Theory]
    [InlineData("empty")]
    [InlineData("zeroed")]
    public async Task A_durable_subscription_whose_position_file_holds_no_state_resumes_from_the_oldest_message_and_says_so(string damage)
    {
        var log = new ConcurrentQueue<string>();
        Func<BrokerOptions, BrokerOptions> logged = o => o with { Log = log.Enqueue };
        await using var f = await ServerFixture.StartAsync(broker: logged);
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("jobs", Encoding.UTF8.GetBytes($"m{i}"));
        }

        // Committed up to 3: m0..m2 processed, m3 and m4 not.
        await using (var first = await f.ConnectAsync())
        {
            await first.SubscribeAsync(1, 1, "jobs", 3, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
            Assert.Equal(0UL, (await first.ReadAsync()).OkValue);
            Assert.Equal(["m0", "m1", "m2"], (await first.ReadDeliveriesAsync(3)).Select(x => x.Text));
            await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 3));
            var ok = await first.ReadAsync();
            Assert.Equal((FrameType.Ok, 2UL, 3UL), (ok.Type, ok.RequestId, ok.OkValue));
        }

        await f.Broker.PublishAsync("jobs", "m5"u8.ToArray());
        var path = Path.Combine(f.DataDirectory, "subscriptions", "worker.pos");
        await f.RestartAsync(broker: logged, whileClosed: () =>
        {
            var length = new FileInfo(path).Length;
            using var file = new FileStream(path, FileMode.Truncate, FileAccess.Write);
            if (damage == "zeroed")
            {
                file.SetLength(length); // the file's size survived, its data did not
            }
        });

        // Committed, else Latest: nothing says what was committed, so from the oldest kept (m0), not the head (6).
        await using (var second = await f.ConnectAsync())
        {
            await second.SubscribeAsync(1, 9, "jobs", 100, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Latest);
            var start = (await second.ReadAsync()).OkValue;
            Assert.True(start == 0, $"the subscription resumed at offset {start}, not at the oldest message kept (0), after its position file was {damage}: the uncommitted m3..m5 were skipped");
            Assert.Equal(["m0", "m1", "m2", "m3", "m4", "m5"], (await second.ReadDeliveriesAsync(6)).Select(x => x.Text));
        }

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'worker'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains("holds no state", StringComparison.Ordinal), $"no recovery report names the blank position file of subscription 'worker': [{string.Join("; ", f.Broker.RecoveryReports)}]");
        Assert.Contains(log, l => l.Contains("'worker'", StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal));

        // A restart before its first commit: it still resumes from the oldest kept (what it stored when it opened).
        await f.RestartAsync(broker: logged);
        await using var third = await f.ConnectAsync();
        await third.SubscribeAsync(1, 9, "jobs", 100, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Latest);
        Assert.Equal(0UL, (await third.ReadAsync()).OkValue);
        Assert.Equal(["m0", "m1", "m2", "m3", "m4", "m5"], (await third.ReadDeliveriesAsync(6)).Select(x => x.Text));
        Assert.DoesNotContain(f.Broker.RecoveryReports, r => r.Contains("'worker'", StringComparison.Ordinal));
    }

    /// <summary>
    /// A durable name whose position file is not a position file (here a wrong magic) cannot be subscribed to over the
    /// wire either: the client gets STORAGE_ERROR with the file, the reason and what to do, not INVALID_ARGUMENT with a
    /// bare exception message, and its connection and the broker go on serving.
    /// </summary>
    [Fact]
    public async Task Subscribing_under_a_durable_name_whose_position_file_is_damaged_answers_a_storage_error_naming_the_file()
    {
        await using var f = await ServerFixture.StartAsync();
        await f.Broker.PublishAsync("jobs", "m0"u8.ToArray());
        await using (var first = await f.ConnectAsync())
        {
            await first.SubscribeAsync(1, 1, "jobs", 4, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
            Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
            Assert.Equal(["m0"], (await first.ReadDeliveriesAsync(1)).Select(x => x.Text));
            await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 1));
            Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
        }

        var path = Path.Combine(f.DataDirectory, "subscriptions", "worker.pos");
        await f.RestartAsync(whileClosed: () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.Write("NOTAPOSN"u8);
        });

        await using var c = await f.ConnectAsync();
        await c.SubscribeAsync(7, 1, "jobs", 4, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
        var error = await c.ReadAsync();
        Assert.True(
            error.Type == FrameType.Error && error.ErrorCode == ErrorCode.StorageError && error.RequestId == 7 && !error.CloseConnection
            && error.ErrorReason.Contains(path, StringComparison.Ordinal) && error.ErrorReason.Contains("magic 0x", StringComparison.Ordinal) && error.ErrorReason.Contains("repair the file, or remove it", StringComparison.Ordinal),
            $"expected ERROR#7 StorageError naming {path}, its magic and what to do, got: {error}");

        // The same connection subscribes under another durable name and is served.
        await c.SubscribeAsync(8, 2, "jobs", 4, Protocol.StartKind.Committed, durable: "other", fallback: Protocol.StartKind.Earliest);
        var ok = await c.ReadAsync();
        Assert.Equal((FrameType.Ok, 8UL), (ok.Type, ok.RequestId));
        Assert.Equal(["m0"], (await c.ReadDeliveriesAsync(1)).Select(d => d.Text));
    }
}
