using System.Diagnostics;
using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A <c>sub</c> whose standard output is a pipe whose reader has gone (<c>fastbroker sub … | head -1</c>, a consumer
/// that crashed) stops at the first message it cannot write, exits 141 (128 + SIGPIPE, what a shell reports for a
/// process a broken pipe ended) and neither acks nor commits that message or any after it. .NET ignores SIGPIPE and its
/// console swallows EPIPE, so before, <c>sub</c> went on "printing" into the void: a group member acked every job and
/// a durable subscription committed every message nobody read (both exited 0 with <c>--count</c>).
/// </summary>
[Collection(nameof(FailoverCollection))]
public class SubClosedOutputTests
{
    /// <summary>Far more than a pipe holds (64 KiB): 20000 messages of 100 bytes are 2 MB of output.</summary>
    private const int Messages = 20_000;

    [Fact]
    public async Task A_sub_whose_output_pipe_closed_exits_141_and_acks_or_commits_nothing_it_could_not_write()
    {
        using var dir = new TempDirectory("fastbroker-cli-sub-epipe");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Path, port);
        var payload = new string('x', 100);
        await Cli.RunAsync("pub", "jobs", payload, "--count", Messages.ToString(CultureInfo.InvariantCulture), "-q", "--server", server);
        await Cli.RunAsync("pub", "orders", payload, "--count", Messages.ToString(CultureInfo.InvariantCulture), "-q", "--server", server);
        var failures = new List<string>();
        var count = Messages.ToString(CultureInfo.InvariantCulture);

        // A group member: the jobs it could not write go back to the group, unacked.
        var (exit, errors) = await RunWithOutputClosedAsync(["sub", "jobs", "--group", "workers", "--count", count, "--server", server]);
        var (members, acked, inFlight, lag) = await GroupAsync(server, "jobs", "workers");
        for (var polls = 0; polls < 600 && (members != 0 || inFlight != 0); polls++)
        {
            await Task.Delay(100); // the server may not have seen the member's connection close yet
            (members, acked, inFlight, lag) = await GroupAsync(server, "jobs", "workers");
        }

        if (exit != 141 || !errors.Contains("standard output", StringComparison.Ordinal) || members != 0 || inFlight != 0 || acked >= Messages || acked + lag != Messages)
        {
            failures.Add($"sub --group: exit {exit} (expected 141), members {members}, acked {acked} (expected fewer than {Messages}), in flight {inFlight}, lag {lag} (expected acked + lag = {Messages}); stderr: {errors}");
        }

        // A durable subscription: the committed position is after the last message written, not after the last read.
        (exit, errors) = await RunWithOutputClosedAsync(["sub", "orders", "--durable", "d1", "--from", "earliest", "--count", count, "--server", server]);
        string[] resume = ["sub", "orders", "--durable", "d1", "--from", "committed", "--count", "1", "--timeout", "10", "--format", "full", "--server", server];
        var resumed = await CliOutcome.RunAsync(resume);
        var offset = resumed.ExitCode == 0 && resumed.Output.StartsWith("orders@", StringComparison.Ordinal)
            ? long.Parse(resumed.Output.AsSpan(7, resumed.Output.IndexOf(' ', StringComparison.Ordinal) - 7), CultureInfo.InvariantCulture)
            : -1;
        if (exit != 141 || !errors.Contains("standard output", StringComparison.Ordinal) || offset is < 1 or >= Messages)
        {
            failures.Add($"sub --durable: exit {exit} (expected 141), then --from committed: {resumed.Describe(resume)}, printed [{resumed.Output}] (expected an offset from 1 to {Messages - 1}); stderr: {errors}");
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n--- serve ---\n" + serve.Errors);
    }

    /// <summary>
    /// Runs <c>fastbroker args… | head -n 1</c> in bash (head exits after the first line, closing the pipe's only read
    /// end) and returns fastbroker's exit code (<see cref="CliOutcome.StillRunning"/> if the pipeline has not ended
    /// within 60 s) and stderr.
    /// </summary>
    private static async Task<(int Exit, string Errors)> RunWithOutputClosedAsync(string[] args)
    {
        var host = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        string[] pipeline = ["-c", "\"$@\" | head -n 1 >/dev/null; exit \"${PIPESTATUS[0]}\"", "bash", host, Cli.DllPath, .. args];
        using var child = new ChildProcessRun("bash", pipeline);
        return await child.WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>A process run to its end, its stderr collected.</summary>
    private sealed class ChildProcessRun : IDisposable
    {
        private readonly Process _process;
        private readonly Task<string> _errors;

        public ChildProcessRun(string file, string[] args)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }

            _process = Process.Start(psi)!;
            _ = _process.StandardOutput.ReadToEndAsync();
            _errors = _process.StandardError.ReadToEndAsync();
        }

        public async Task<(int Exit, string Errors)> WaitAsync(TimeSpan deadline)
        {
            using var timeout = new CancellationTokenSource(deadline);
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
                return (CliOutcome.StillRunning, await _errors);
            }

            return (_process.ExitCode, await _errors);
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }
    }

    private static async Task<(long Members, long Acked, long InFlight, long Lag)> GroupAsync(string server, string topic, string name)
    {
        var g = await Cli.GroupAsync(server, topic, name);
        return (g.GetProperty("members").GetInt64(), g.GetProperty("acked").GetInt64(), g.GetProperty("inFlight").GetInt64(), g.GetProperty("lag").GetInt64());
    }
}
