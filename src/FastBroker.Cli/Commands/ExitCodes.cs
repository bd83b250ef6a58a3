namespace FastBroker.Cli.Commands;

/// <summary>Exit codes shared by every command (each command's own results are 0 to 3: see its help).</summary>
internal static class ExitCodes
{
    /// <summary>
    /// The command line cannot be used: an unknown option, a missing argument, a value out of range or that does not
    /// parse. 64 (EX_USAGE, sysexits.h), not 1 or 2, which commands use for their results (journal verify: 1 corrupt,
    /// 2 damaged tail; sub: 1 no message within --timeout), so a script never reads a typo as one of them.
    /// </summary>
    public const int Usage = 64;

    /// <summary>
    /// Asked, but not done yet: <c>promote</c> when the node answers 202 (the standby took the promotion up and it is
    /// still under way; it may yet be refused). 75 (EX_TEMPFAIL, sysexits.h): check later (<c>fastbroker status</c>,
    /// <c>GET /primary</c>), not 0 (promoted) nor 1 (refused).
    /// </summary>
    public const int InProgress = 75;

    /// <summary>
    /// <c>sub</c> stopped because the reader of its standard output has gone (a broken pipe: <c>sub … | head -1</c>).
    /// 141 (128 + SIGPIPE), what a shell reports for a process SIGPIPE ended: the runtime ignores SIGPIPE, so the
    /// command sees the broken pipe as a failed write and exits with the status the signal would have given.
    /// </summary>
    public const int BrokenPipe = 141;
}
