using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal verify</c> exits 3 when it checked nothing — the directory does not exist, or holds no segment
/// file (a topic's directory given instead of its journal) — not 2, which says "damaged tail", nor 0, which says
/// "intact"; a real journal still verifies with 0.
/// </summary>
public class JournalVerifyExitCodeTests
{
    [Fact]
    public async Task Verify_of_a_path_without_a_journal_exits_3_not_damaged_or_intact()
    {
        using var dir = new TempDirectory("fastbroker-cli-verify");
        var journal = Cli.WriteOneRecordJournal(dir);

        var intact = await CliOutcome.RunAsync(["journal", "verify", journal]);
        Assert.True(intact.ExitCode == 0, intact.Describe(["journal", "verify", journal]));

        foreach (var path in new[] { dir.Combine("no-such-directory"), dir.Combine("topics", "orders") })
        {
            string[] args = ["journal", "verify", path];
            var outcome = await CliOutcome.RunAsync(args);
            Assert.True(outcome.ExitCode == 3 && outcome.Errors.Trim().Length > 0 && !outcome.HasStackTrace, outcome.Describe(args));
        }
    }
}
