namespace FastBroker.Compare.Tests;

/// <summary>
/// The tool's options: one left out takes its default (System.CommandLine 2.0 gives a command validator 0 for an
/// option not on the command line, not its default, so the checks sit on the options themselves); a bad value is a
/// usage error that names the option.
/// </summary>
public class CommandLineTests
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Without_runs_or_warmup_the_tool_runs_with_their_defaults()
    {
        var dir = Directory.CreateTempSubdirectory("fastbroker-compare-cli-test-").FullName;
        try
        {
            // fastbroker only (no competitor needed); a filter no variant matches: the server starts, nothing is measured.
            using var tool = ToolProcess.Start("--systems", "fastbroker", "--filter", "no-such-variant", "--dir", dir, "--warmup", "0");
            Assert.True(await tool.WaitForExitAsync(Within), $"the tool did not exit within {Within.TotalSeconds} s:\n{tool.Output}");
            Assert.DoesNotContain("--runs", tool.Output, StringComparison.Ordinal);
            Assert.Equal(0, tool.ExitCode);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("--runs", "0", "--runs")]
    [InlineData("--runs", "x", "--runs")]
    [InlineData("--warmup", "-1", "--warmup")]
    [InlineData("--warmup", "3601", "--warmup")]
    [InlineData("--messages", "0", "--messages")]
    [InlineData("--systems", "kafka", "kafka")]
    public async Task A_bad_value_is_a_usage_error_naming_the_option(string option, string value, string named)
    {
        using var tool = ToolProcess.Start(option, value);
        Assert.True(await tool.WaitForExitAsync(Within), $"the tool did not exit within {Within.TotalSeconds} s:\n{tool.Output}");
        Assert.NotEqual(0, tool.ExitCode);
        Assert.Contains(named, tool.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", tool.Output, StringComparison.Ordinal);
    }
}
