using System.Collections.Concurrent;
using System.Diagnostics;

namespace FastBroker.Testing;

/// <summary>
/// A real child process for crash tests: started with <c>dotnet &lt;dll&gt; args</c>, its stdout lines collected
/// as they arrive, killed with SIGKILL (<see cref="Process.Kill(bool)"/>) when the test says so.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private int _lineCount;

    private ChildProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _lines.Enqueue(e.Data);
                Interlocked.Increment(ref _lineCount);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _errors.Enqueue(e.Data);
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Lines the child has printed so far.</summary>
    public IReadOnlyCollection<string> Lines => _lines;

    /// <summary>How many stdout lines have arrived.</summary>
    public int LineCount => Volatile.Read(ref _lineCount);

    /// <summary>What the child printed on stderr.</summary>
    public string Errors => string.Join(Environment.NewLine, _errors);

    /// <summary>True once the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code (only after exit).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>The OS process id.</summary>
    public int Id => _process.Id;

    /// <summary>Starts <paramref name="assemblyPath"/> (a .dll) under the current dotnet host.</summary>
    public static ChildProcess StartDotnet(string assemblyPath, params string[] args) => StartDotnet(null, assemblyPath, args);

    /// <summary>
    /// Starts <paramref name="assemblyPath"/> (a .dll) under the current dotnet host, with at most
    /// <paramref name="openFileLimit"/> descriptors open at once when it is not null (<c>ulimit -n</c>, soft and hard,
    /// set by /bin/sh, which then execs the host: <see cref="Id"/> is the host's).
    /// </summary>
    public static ChildProcess StartDotnet(int? openFileLimit, string assemblyPath, params string[] args)
    {
        var host = Environment.ProcessPath is { } p && System.IO.Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var resetSigint = StopSignalsIgnored();
        var psi = new ProcessStartInfo(resetSigint ? "env" : openFileLimit is null ? host : "/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (resetSigint)
        {
            // A test run started in the background of a non-interactive shell ignores SIGINT, one under nohup SIGHUP,
            // and a child inherits that: .NET then leaves the signal ignored (a shell's background job must not die of
            // Ctrl-C; a nohup'd command must not stop when the terminal hangs up), and a test that interrupts or hangs
            // up a command would see it run on. env --default-signal gives the child the defaults back.
            psi.ArgumentList.Add("--default-signal=INT,HUP");
            psi.ArgumentList.Add(openFileLimit is null ? host : "/bin/sh");
        }

        if (openFileLimit is { } limit)
        {
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("ulimit -n \"$0\" && exec \"$@\"");
            psi.ArgumentList.Add(limit.ToString(System.Globalization.CultureInfo.InvariantCulture));
            psi.ArgumentList.Add(host);
        }

        psi.ArgumentList.Add(assemblyPath);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return new ChildProcess(Process.Start(psi) ?? throw new InvalidOperationException("could not start " + assemblyPath));
    }

    /// <summary>Whether this process ignores SIGHUP or SIGINT (signals 1 and 2: the low two bits of <c>SigIgn</c> in <c>/proc/self/status</c>).</summary>
    private static bool StopSignalsIgnored()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
            {
                return (ulong.Parse(line.AsSpan(7).Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & 0x3) != 0;
            }
        }

        return false;
    }

    /// <summary>SIGKILL: no finalisers, no flush, no goodbye. Waits until the OS has reaped it.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        if (!_process.WaitForExit(60_000))
        {
            throw new TimeoutException("child process did not die after SIGKILL");
        }

        _process.WaitForExit(); // drains the async output readers
    }

    /// <summary>Waits for a normal exit within the deadline.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        _process.WaitForExit();
        return true;
    }

    /// <summary>Writes a line to the child's stdin.</summary>
    public void WriteLine(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
