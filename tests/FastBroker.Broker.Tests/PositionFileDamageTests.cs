using System.Collections.Concurrent;
using System.Text;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A durable subscription's position file that is damaged, or cut short before its positions end: the broker's open
/// and a subscribe under that name read it alike, and a file that is refused is left exactly as it was.
/// </summary>
public class PositionFileDamageTests
{
    private static readonly SubscriptionOptions s_durable = new() { DurableName = "auditor", Start = StartPosition.Committed };

    /// <summary>
    /// A position file that is not one (a wrong magic: a damaged or foreign header; a short file that is not zeros; an
    /// entry count no position file holds, negative or above 1,024; a file longer than a position file) cannot say what the subscription committed: the
    /// broker reports it when it opens, and subscribing under that name is refused with a typed error that names the
    /// file, says why and what to do, and leaves the file exactly as it was (a short one was padded with zeros to its
    /// full size by the mapping). The broker keeps serving, and the file, repaired, resumes at the position it holds.
    /// </summary>
    [Theory]
    [InlineData("wrong magic")]
    [InlineData("short, wrong magic")]
    [InlineData("short, not zeros")]
    [InlineData("entry count beyond any position file")]
    [InlineData("negative entry count")]
    [InlineData("longer than a position file")]
    public async Task Subscribing_under_a_durable_name_whose_position_file_is_not_one_is_refused_naming_the_file_and_leaves_it_as_it_was(string damage)
    {
        await using var f = await BrokerFixture.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"e{i}"));
        }

        using (var sub = f.Broker.Subscribe("audit", s_durable))
        {
            sub.Commit("audit", 1);
        }

        var path = Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");
        var saved = Array.Empty<byte>();
        await f.RestartAsync(whileClosed: () =>
        {
            saved = File.ReadAllBytes(path);
            byte[] damaged = damage switch
            {
                "wrong magic" => [.. "NOTAPOSN"u8, .. saved.AsSpan(8)],
                "short, wrong magic" => [.. "NOTAPOSN"u8, .. saved.AsSpan(8, 92)],
                "entry count beyond any position file" => [.. saved.AsSpan(0, 8), .. BitConverter.GetBytes(5000L), .. saved.AsSpan(16)],
                "negative entry count" => [.. saved.AsSpan(0, 8), .. BitConverter.GetBytes(-2L), .. saved.AsSpan(16)],
                "longer than a position file" => [.. saved, .. new byte[8]],
                _ => "FBF\0"u8.ToArray(),
            };
            File.WriteAllBytes(path, damaged);
        });

        var before = File.ReadAllBytes(path);
        var reason = damage switch
        {
            "short, not zeros" => "4 bytes (0x46424600)",
            "entry count beyond any position file" => "entry count 5000 (a position file holds 0 to 1024 entries)",
            "negative entry count" => "entry count -2 (a position file holds 0 to 1024 entries)",
            "longer than a position file" => $"{saved.Length + 8} bytes, longer than a position file's {saved.Length}: damaged, or not written by this version of FastBroker",
            _ => $"magic 0x{BitConverter.ToInt64("NOTAPOSN"u8):X16}",
        };
        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'auditor'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains(reason, StringComparison.Ordinal) && report.Contains("repaired or removed", StringComparison.Ordinal), $"no recovery report names the damaged position file of 'auditor' with its reason ({reason}): [{string.Join("; ", f.Broker.RecoveryReports)}]");

        var e = Assert.Throws<BrokerException>(() => f.Broker.Subscribe("audit", s_durable));
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.True(e.Message.Contains(path, StringComparison.Ordinal) && e.Message.Contains(reason, StringComparison.Ordinal) && e.Message.Contains("repair the file, or remove it", StringComparison.Ordinal), $"the refusal does not name the file ({path}), the reason ({reason}) and what to do: {e.Message}");
        var after = File.ReadAllBytes(path);
        Assert.True(before.AsSpan().SequenceEqual(after), $"the broker's open or the refused subscribe changed the position file ({damage}): {saved.Length} bytes saved, {before.Length} after the open, {after.Length} after the subscribe, first 8 bytes {Convert.ToHexString(after.AsSpan(0, Math.Min(8, after.Length)))}");
        Assert.Empty(f.Broker.GetSnapshot().Subscriptions);

        // The broker keeps serving: publishes, another durable subscription, a second refusal alike.
        var fourth = await f.Broker.PublishAsync("audit", "e3"u8.ToArray());
        using (var other = f.Broker.Subscribe("audit", s_durable with { DurableName = "other" }))
        {
            Assert.Equal([0L, 1L, 2L, fourth], Consume.Drain(other, 4).Select(x => x.Offset));
        }

        Assert.Equal(BrokerErrorCode.StorageError, Assert.Throws<BrokerException>(() => f.Broker.Subscribe("audit", s_durable)).Code);

        // Repaired, it resumes at its committed position (1).
        File.WriteAllBytes(path, saved);
        using var again = f.Broker.Subscribe("audit", s_durable);
        Assert.Equal(1, again.CommittedOffset("audit"));
        Assert.Equal([1L, 2L, fourth], Consume.Drain(again, 3).Select(x => x.Offset));
    }

    /// <summary>
    /// A position file whose magic survived but that is cut short before its positions end (before its entry count, or
    /// inside its last entry) holds no state, as an empty one: the broker reports it when it opens and leaves it as it
    /// is, and subscribing under that name resumes every topic from the oldest message kept, logged. It was opened at
    /// the open as a file without positions (padded with zeros), so the subscription took its fallback, unreported.
    /// </summary>
    [Theory]
    [InlineData("magic only")]
    [InlineData("inside its entry")]
    public async Task A_position_file_cut_short_before_its_positions_end_resumes_from_the_oldest_message_and_says_so(string damage)
    {
        var log = new ConcurrentQueue<string>();
        Func<BrokerOptions, BrokerOptions> logged = o => o with { Log = log.Enqueue };
        await using var f = await BrokerFixture.StartAsync(logged);
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"e{i}"));
        }

        using (var sub = f.Broker.Subscribe("audit", s_durable))
        {
            sub.Commit("audit", 3);
        }

        var path = Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");
        var cut = damage == "magic only" ? 8 : 16 + 200; // the entry's name survived, its position (at 16 + 256) did not
        await f.RestartAsync(logged, whileClosed: () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.SetLength(cut);
        });

        var report = f.Broker.RecoveryReports.FirstOrDefault(r => r.Contains("'auditor'", StringComparison.Ordinal));
        Assert.True(report is not null && report.Contains("holds no state", StringComparison.Ordinal), $"no recovery report says the position file of 'auditor' ({damage}) holds no state: [{string.Join("; ", f.Broker.RecoveryReports)}]");
        Assert.Equal(cut, new FileInfo(path).Length);

        using (var resumed = f.Broker.Subscribe("audit", s_durable))
        {
            // Nothing says what it committed: from the oldest kept, stored at once (a restart before a commit does too).
            Assert.True(resumed.CommittedOffset("audit") == 0, $"the subscription's position after its file was cut short ({damage}) is {resumed.CommittedOffset("audit")?.ToString() ?? "none"}, not the oldest message kept (0)");
            Assert.Equal(["e0", "e1", "e2", "e3", "e4"], Consume.Drain(resumed, 5).Select(x => x.Payload));
        }

        Assert.Contains(log, l => l.Contains("'auditor'", StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal));
        await f.RestartAsync(logged);
        Assert.DoesNotContain(f.Broker.RecoveryReports, r => r.Contains("'auditor'", StringComparison.Ordinal));
        using var third = f.Broker.Subscribe("audit", s_durable);
        Assert.Equal(0, third.CommittedOffset("audit"));
    }

    /// <summary>
    /// A position file shorter than a position file whose entries are all whole (its entry count and each entry it
    /// counts inside it) loses nothing when it is padded with zeros to its full size, but that changes the operator's
    /// file: the broker's open says so in a recovery report, a subscribe that finds such a file says so in the log, each
    /// naming the file with its old and new length, and the subscription resumes at the position it committed.
    /// </summary>
    [Fact]
    public async Task A_short_position_file_whose_entries_are_whole_is_padded_and_the_padding_is_reported()
    {
        var log = new ConcurrentQueue<string>();
        Func<BrokerOptions, BrokerOptions> logged = o => o with { Log = log.Enqueue };
        await using var f = await BrokerFixture.StartAsync(logged);
        for (var i = 0; i < 5; i++)
        {
            await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes($"e{i}"));
        }

        using (var sub = f.Broker.Subscribe("audit", s_durable))
        {
            sub.Commit("audit", 3);
        }

        var path = Path.Combine(f.DataDirectory, "subscriptions", "auditor.pos");
        var full = new FileInfo(path).Length;
        const int Whole = 16 + 264; // its header and its one entry, whole
        await f.RestartAsync(logged, whileClosed: () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.SetLength(Whole);
        });

        var reports = f.Broker.RecoveryReports.Where(r => r.Contains("'auditor'", StringComparison.Ordinal)).ToArray();
        Assert.True(
            reports.Length == 1 && reports[0].Contains(path, StringComparison.Ordinal) && reports[0].Contains($"from {Whole} to {full} bytes", StringComparison.Ordinal),
            $"expected one recovery report naming {path} padded from {Whole} to {full} bytes: [{string.Join("; ", f.Broker.RecoveryReports)}]");
        Assert.Equal(full, new FileInfo(path).Length);
        using (var resumed = f.Broker.Subscribe("audit", s_durable))
        {
            Assert.Equal(3, resumed.CommittedOffset("audit"));
        }

        // Cut short again while the broker runs: the subscribe pads it, and logs it.
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            file.SetLength(Whole);
        }

        using (var again = f.Broker.Subscribe("audit", s_durable))
        {
            Assert.Equal(3, again.CommittedOffset("audit"));
            Assert.Equal(["e3", "e4"], Consume.Drain(again, 2).Select(x => x.Payload));
        }

        var lines = log.Where(l => l.Contains("'auditor'", StringComparison.Ordinal) && l.Contains("padded", StringComparison.Ordinal)).ToArray();
        Assert.True(
            lines.Length == 1 && lines[0].Contains(path, StringComparison.Ordinal) && lines[0].Contains($"from {Whole} to {full} bytes", StringComparison.Ordinal),
            $"expected one log line naming {path} padded from {Whole} to {full} bytes by the subscribe: [{string.Join(" | ", log)}]");
        Assert.Equal(full, new FileInfo(path).Length);
    }

    /// <summary>
    /// Position files that hold no state when their durable names subscribe (after a power loss, every subscription's at
    /// once) are each reported at the subscribe, at most one line per 10 s over all of them, the first at once, the next
    /// with a count of those not logged: thousands of subscriptions coming back do not flood the log.
    /// </summary>
    [Fact]
    public async Task Position_files_holding_no_state_at_their_subscribes_are_reported_at_most_once_per_interval()
    {
        var log = new ConcurrentQueue<string>();
        var clock = new ManualClock();
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue, LogClock = clock });
        await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes("e0"));

        const int subscriptions = 5;
        RateLimitedLines.Repeat(clock, subscriptions, i =>
        {
            var name = $"blank{i}";
            var path = Path.Combine(f.DataDirectory, "subscriptions", name + ".pos");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, []);
            using var sub = f.Broker.Subscribe("audit", s_durable with { DurableName = name });
            Assert.Equal(0, sub.CommittedOffset("audit")); // the oldest kept, not a fallback
        });

        var lines = log.Where(l => l.Contains("'blank", StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal)).ToArray();
        if (RateLimitedLines.Violation(lines, subscriptions, "position files holding no state at their subscribes") is { } violation)
        {
            Assert.Fail(violation);
        }

        Assert.Contains("'blank0'", lines[0], StringComparison.Ordinal);
        Assert.Contains($"'blank{subscriptions - 1}'", lines[1], StringComparison.Ordinal);
    }

    /// <summary>
    /// Position files holding no state at three subscribes within one interval: the first is logged at once, the other
    /// two held back; when the broker closes, the latest of them is written with their count, once. Before, the count
    /// went out only with the next such line, and the close lost it.
    /// </summary>
    [Fact]
    public async Task Position_file_lines_held_back_are_written_with_their_count_once_when_the_broker_closes()
    {
        var log = new ConcurrentQueue<string>();
        var clock = new ManualClock(); // never moved on: every line after the first is held back
        await using var f = await BrokerFixture.StartAsync(o => o with { Log = log.Enqueue, LogClock = clock });
        await f.Broker.PublishAsync("audit", Encoding.UTF8.GetBytes("e0"));
        const int subscriptions = 3;
        for (var i = 0; i < subscriptions; i++)
        {
            var name = $"blank{i}";
            var path = Path.Combine(f.DataDirectory, "subscriptions", name + ".pos");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, []);
            using var sub = f.Broker.Subscribe("audit", s_durable with { DurableName = name });
        }

        string[] Lines() => [.. log.Where(l => l.Contains("'blank", StringComparison.Ordinal) && l.Contains("held no state", StringComparison.Ordinal))];
        Assert.Single(Lines());

        await f.Broker.DisposeAsync();
        var lines = Lines();
        var count = $"({subscriptions - 1} more like it since the last such line, not logged; this is the latest of them)";
        Assert.True(
            lines.Length == 2 && lines[1].EndsWith(count, StringComparison.Ordinal) && lines[1].Contains($"'blank{subscriptions - 1}'", StringComparison.Ordinal),
            $"expected the first line, then at the close one for 'blank{subscriptions - 1}' ending with '{count}': [{string.Join(" | ", lines)}]");
    }
}
