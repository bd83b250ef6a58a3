using System.Diagnostics;

namespace FastBroker.Bench.Pair;

/// <summary>
/// One child process — a <c>fastbroker</c> witness or pair node, or a competitor's server in bench/FastBroker.Compare:
/// stdout and stderr kept as the last <see cref="TailLines"/> lines for error messages, killed with SIGKILL when asked
/// or disposed (the process alone, or its whole tree when started so).
/// </summary>
internal sealed class PairProcess : IDisposable
{
    /// <summary>200 lines: a standby logs a "link down" line per retry (~16/s) while its primary is gone.</summary>
    private const int TailLines = 200;

    /// <summary>How long <see cref="WaitReaped"/> waits for stdout and stderr to close once the process is gone.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly Queue<string> _tail = new(TailLines);
    private readonly bool _killTree;

    private PairProcess(string name, Process process, bool killTree)
    {
        Name = name;
        _process = process;
        _killTree = killTree;
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>What the benchmark calls it ("witness", "a", "b").</summary>
    public string Name { get; }

    /// <summary>The OS process id.</summary>
    public int Id => _process.Id;

    /// <summary>True once the process has ended.</summary>
    public bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>Starts <c>fastbroker &lt;arguments&gt;</c>.</summary>
    public static PairProcess Start(FastBrokerExecutable executable, string name, IEnumerable<string> arguments)
    {
        var process = Process.Start(executable.StartInfo(arguments)) ?? throw new InvalidOperationException($"could not start {executable} ({name})");
        return new PairProcess(name, process, killTree: false);
    }

    /// <summary>
    /// Starts any program (<paramref name="startInfo"/> must redirect stdout and stderr); with <paramref name="killTree"/>
    /// a kill takes its whole process tree (a server started through a script, as RabbitMQ's).
    /// </summary>
    public static PairProcess Start(ProcessStartInfo startInfo, string name, bool killTree)
    {
        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {startInfo.FileName} ({name})");
        return new PairProcess(name, process, killTree);
    }

    /// <summary>The last lines the process printed (stdout and stderr interleaved as they arrived).</summary>
    public string Tail()
    {
        lock (_tail)
        {
            return string.Join(Environment.NewLine, _tail.Select(l => $"  [{Name}] {l}"));
        }
    }

    /// <summary>SIGKILL (no shutdown, no flush) and wait until the OS has reaped it (<see cref="SignalKill"/>, <see cref="WaitReaped"/>).</summary>
    public void Kill()
    {
        SignalKill();
        WaitReaped();
    }

    /// <summary>SIGKILL to the process (or its tree when started so), without waiting for anything.</summary>
    public void SignalKill()
    {
        try
        {
            if (!_process.HasExited)
            {
                // The process alone unless asked: fastbroker starts no children, and a tree kill first scans all of
                // /proc (seconds on a busy machine, too long for a Ctrl-C).
                _process.Kill(entireProcessTree: _killTree);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>
    /// Waits (10 s) until the OS has reaped the process, then (5 s) for its stdout and stderr to reach end of file. Both
    /// bounded: a grandchild that outlived it (a daemon, an orphan a tree kill missed) may hold the pipes open for
    /// ever, and the no-timeout <see cref="Process.WaitForExit()"/> would wait for it.
    /// </summary>
    public void WaitReaped()
    {
        try
        {
            if (!_process.WaitForExit(10_000))
            {
                return;
            }

            using var drain = new CancellationTokenSource(DrainTimeout);
            _process.WaitForExitAsync(drain.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            // Output still held open by someone else: what it printed so far is in the tail; stop waiting.
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            if (_tail.Count == TailLines)
            {
                _tail.Dequeue();
            }

            _tail.Enqueue(line);
        }
    }
}
