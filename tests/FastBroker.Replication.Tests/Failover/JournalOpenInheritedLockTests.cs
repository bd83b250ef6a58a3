using System.Diagnostics;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// <c>fastbroker journal verify</c> in a PID namespace of its own (as in a container) on a journal whose lock was taken
/// by a process that has exited and is held by one that inherited it: the kernel leaves such a lock out of
/// <c>/proc/locks</c> there, and the command must still see the journal as open.
/// </summary>
[Collection(nameof(FailoverCollection))]
public class JournalOpenInheritedLockTests
{
    [Fact]
    public async Task A_lock_inherited_from_an_exited_locker_is_seen_in_a_pid_namespace_of_its_own()
    {
        if (!CanUnsharePidNamespace())
        {
            // unshare -p needs CAP_SYS_ADMIN: as root it must work (else the test fails below); without it there is no
            // namespace to run in.
            Assert.False(Environment.IsPrivilegedProcess, "unshare -p -f --mount-proc fails as root");
            return;
        }

        using var dir = new TempDirectory("fastbroker-cli-inherited-lock");
        var journal = dir.Combine("journal");
        using (var log = JournalLog.Open(journal, JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None }))
        {
            for (var i = 0; i < 100; i++)
            {
                Assert.True(log.TryAppend("a record"u8, out _));
            }

            log.Commit();
        }

        // In a new PID namespace (its own /proc): the shell opens journal.lock as fd 9, flock(1) locks it and exits, and
        // the shell, holding the lock, says whether /proc/locks lists it and runs verify with fd 9 closed.
        var host = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        const string Script = """
            exec 9<"$1" && flock -x -n 9 || exit 90
            if grep -q ":$(stat -c %i "$1") " /proc/locks; then echo "lock listed"; else echo "lock hidden"; fi
            "$2" "$3" journal verify "$4" 9<&-
            """;
        var (exit, output, errors) = await RunAsync("unshare", ["-p", "-f", "--mount-proc", "bash", "-c", Script, "inherited-lock", Path.Combine(journal, "journal.lock"), host, Cli.DllPath, journal]);
        var context = $"exit {exit}, stdout: {output}\nstderr: {errors}";
        Assert.True(output.Contains("lock hidden", StringComparison.Ordinal), $"/proc/locks in the namespace leaves the lock out: {context}");
        Assert.True(exit == 0 && errors.Contains($"the journal in {journal} is open in another process (its journal.lock is held)", StringComparison.Ordinal), $"expected exit 0 and the open note on stderr: {context}");
        Assert.False(JournalInspector.IsOpen(journal), "the lock went with the namespace");
    }

    private static bool CanUnsharePidNamespace()
    {
        try
        {
            return RunAsync("unshare", ["-p", "-f", "--mount-proc", "true"]).GetAwaiter().GetResult().Exit == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no unshare
        }
    }

    /// <summary>Runs a program to its end (killed after 60 s); its exit code, stdout and stderr.</summary>
    private static async Task<(int Exit, string Output, string Errors)> RunAsync(string program, string[] args)
    {
        var start = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        return (process.ExitCode, await output, await errors);
    }
}
