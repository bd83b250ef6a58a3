using System.Diagnostics;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker bench</c>'s table and notes written to a file or a pipe (<c>bench … &gt; report.txt</c>) are plain
/// text: Spectre.Console chooses colours from <c>TERM</c>, not from where the output goes, and wrote escape codes
/// (<c>ESC[38;5;8m</c>) into the file of anyone who ran it from a terminal.
/// </summary>
public class BenchOutputTests
{
    [Fact]
    public async Task Bench_output_redirected_from_a_colour_terminal_has_no_escape_codes()
    {
        var host = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Cli.DllPath, "bench", "ring", "--filter", "no-such-variant", "--warmup", "0", "--runs", "1" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["TERM"] = "xterm-256color"; // as in a terminal, whose output the user sends to a file
        psi.Environment.Remove("NO_COLOR");
        using var process = Process.Start(psi)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(deadline.Token);
        var text = await output;
        Assert.True(process.ExitCode == 0, $"bench ring: exit {process.ExitCode}, stderr: {await errors}");
        Assert.Contains("fastbroker bench ring", text, StringComparison.Ordinal);
        Assert.False(text.Contains('\u001b', StringComparison.Ordinal), $"escape codes in redirected output: {text.Replace("\u001b", "ESC", StringComparison.Ordinal)}");
    }
}
