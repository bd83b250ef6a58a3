using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>How a <c>fastbroker</c> command that is expected to end ended: its exit code and what it printed.</summary>
internal sealed record CliOutcome(int ExitCode, string Output, string Errors)
{
    /// <summary>The exit code <see cref="RunAsync"/> reports for a command still running at its deadline (then killed).</summary>
    public const int StillRunning = -1;

    /// <summary>True when stderr holds an unhandled exception's report rather than a message for the user.</summary>
    public bool HasStackTrace => Errors.Contains("Unhandled exception", StringComparison.Ordinal)
        || Errors.Split('\n').Any(l => l.StartsWith("   at ", StringComparison.Ordinal));

    /// <summary>Runs <c>fastbroker args…</c> until it exits (killed after <paramref name="deadline"/>, default 60 s).</summary>
    public static async Task<CliOutcome> RunAsync(string[] args, TimeSpan? deadline = null)
    {
        using var child = ChildProcess.StartDotnet(Cli.DllPath, args);
        try
        {
            await Eventually.TrueAsync(() => child.HasExited, $"fastbroker {string.Join(' ', args)} exits", deadline ?? TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            child.Kill();
            return new CliOutcome(StillRunning, string.Join('\n', child.Lines), child.Errors);
        }

        child.WaitForExit(TimeSpan.FromSeconds(10)); // drains the output readers
        return new CliOutcome(child.ExitCode, string.Join('\n', child.Lines), child.Errors);
    }

    /// <summary>One line for an assertion message.</summary>
    public string Describe(string[] args) => $"fastbroker {string.Join(' ', args.Select(a => a.Length == 0 ? "''" : a))}: exit {ExitCode}, stderr: {Errors}";
}
