using System.Runtime.InteropServices;

namespace FastBroker.Cli.Commands;

/// <summary>
/// The stop token of a command that runs until told to stop (<c>serve</c>, <c>witness</c>, <c>sub</c>, <c>pub</c>):
/// cancelled by SIGTERM, SIGINT or SIGHUP (whose default action, ending the process at once, is suppressed so the
/// command can finish cleanly) or by the command line's own token. SIGHUP is the terminal hanging up (an ssh session
/// that ended): its default action ended <c>serve</c> with no drain and a <c>sub --durable</c> with no commit. A command
/// started with SIGHUP ignored (<c>nohup</c>) keeps ignoring it. A command for which the signal is its normal end exits 0; one
/// the signal stopped before it did what it was asked (<c>pub</c>, <c>sub --count</c>) exits <see cref="ExitCode"/>.
/// </summary>
internal sealed class StopSignal : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly PosixSignalRegistration _sigterm;
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration? _sighup;
    private readonly bool _secondSignalKills;
    private int _signals;
    private volatile string? _signal;

    /// <param name="cancellationToken">The command line's token.</param>
    /// <param name="secondSignalKills">
    /// Let a second SIGINT or SIGTERM take its default action (end the process at once): for a client command whose
    /// clean exit waits on the server (an UNSUBSCRIBE, a commit, confirmations), so a second Ctrl-C is the way out of a
    /// server that does not answer.
    /// </param>
    public StopSignal(CancellationToken cancellationToken, bool secondSignalKills = false)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _secondSignalKills = secondSignalKills;
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _sighup = HangupIgnored() ? null : PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);
    }

    /// <summary>Cancelled when the command must stop.</summary>
    public CancellationToken Token => _stop.Token;

    /// <summary>The signal that stopped the command ("SIGINT", "SIGTERM", "SIGHUP"), or null when none did.</summary>
    public string? Signal => _signal;

    /// <summary>
    /// The exit status of a command the signal stopped before it finished: 128 + the signal's number, 130 for SIGINT,
    /// 143 for SIGTERM and 129 for SIGHUP, what a shell reports for a process the signal ended, so a script tells it from
    /// a finished run. 130 when the command line's token stopped it.
    /// </summary>
    public int ExitCode => _signal switch
    {
        "SIGTERM" => 143,
        "SIGHUP" => 129,
        _ => 130,
    };

    public void Dispose()
    {
        _sighup?.Dispose();
        _sigint.Dispose();
        _sigterm.Dispose();
        _stop.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _signals) > 1 && _secondSignalKills)
        {
            return; // context.Cancel stays false: the signal's default action ends the process
        }

        context.Cancel = true;
        _signal ??= context.Signal == PosixSignal.SIGTERM ? "SIGTERM" : context.Signal == PosixSignal.SIGHUP ? "SIGHUP" : "SIGINT";
        _stop.Cancel();
    }

    /// <summary>
    /// Whether SIGHUP was ignored when the process started (bit 0 of <c>SigIgn</c> in <c>/proc/self/status</c>), as
    /// <c>nohup</c> leaves it: a handler would replace that, and the command would stop when the terminal hangs up after
    /// all. (The runtime leaves an inherited ignored SIGINT alone for the same reason.)
    /// </summary>
    private static bool HangupIgnored()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
                {
                    return ulong.TryParse(line.AsSpan(7).Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out var ignored) && (ignored & 1) != 0;
                }
            }
        }
        catch (IOException)
        {
        }

        return false;
    }
}
