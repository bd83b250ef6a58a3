using System.Globalization;
using System.Text;

namespace FastBroker.Replication;

/// <summary>
/// The witness wire format: one ASCII line per request and per response, fields separated by one space, terminated
/// by <c>'\n'</c> (a <c>'\r'</c> before it is tolerated, for operators typing into <c>nc</c>). Small enough to write
/// by hand, and nothing here is on a hot path: a primary renews a few times per TTL.
/// </summary>
/// <remarks>
/// Requests: <c>ACQUIRE &lt;nodeId&gt; &lt;epoch&gt; &lt;ttlMs&gt; [force]</c>, <c>RELEASE &lt;nodeId&gt;</c>, <c>STATUS</c>,
/// <c>STANDBY &lt;nodeId&gt; &lt;epoch&gt; in-sync|behind</c>.
/// Responses: <c>GRANTED &lt;epoch&gt; &lt;ttlMs&gt; [behind]</c>, <c>DENIED &lt;holder&gt; &lt;epoch&gt; &lt;remainingMs&gt; [behind]</c>,
/// <c>RELEASED</c>, <c>STATUS &lt;holder|-&gt; &lt;epoch&gt; &lt;remainingMs&gt; [behind]</c>, <c>STANDBY in-sync|behind</c>,
/// <c>ERROR &lt;reason&gt;</c>. The trailing <c>behind</c> is there only while the holder's standby is reported behind.
/// </remarks>
internal static class WitnessProtocol
{
    /// <summary>Longest line in either direction, the <c>'\n'</c> included: a 64-byte node id and two numbers fit four times.</summary>
    public const int MaxLineBytes = 256;

    /// <summary>Shortest lease: below 50 ms a renewal every TTL/4 is faster than a loaded machine schedules it.</summary>
    public const int MinTtlMs = 50;

    /// <summary>Longest lease requested on the wire (the server may grant less, see <see cref="WitnessOptions.MaxTtl"/>).</summary>
    public const int MaxTtlMs = 60_000;

    public const int MaxNodeIdLength = 64;

    /// <summary>The holder field when nobody holds the lease.</summary>
    public const string NoHolder = "-";

    public static bool IsValidNodeId(ReadOnlySpan<char> nodeId)
    {
        if (nodeId.IsEmpty || nodeId.Length > MaxNodeIdLength)
        {
            return false;
        }

        foreach (var c in nodeId)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    public static void ValidateNodeId(string nodeId, string paramName)
    {
        ArgumentNullException.ThrowIfNull(nodeId, paramName);
        if (!IsValidNodeId(nodeId))
        {
            throw new ArgumentException($"A node id is 1-{MaxNodeIdLength} characters of [A-Za-z0-9._-], got '{nodeId}'.", paramName);
        }
    }

    /// <summary>Milliseconds of a lease TTL as sent on the wire, checked against 50..60000.</summary>
    public static int ToTtlMs(TimeSpan ttl, string paramName)
    {
        var ms = ttl.TotalMilliseconds;
        if (!(ms >= MinTtlMs && ms <= MaxTtlMs))
        {
            throw new ArgumentOutOfRangeException(paramName, ttl, $"A lease TTL is {MinTtlMs}..{MaxTtlMs} ms.");
        }

        return (int)ms;
    }

    /// <summary>
    /// Splits a line (without its terminator) into fields; false if it holds anything but printable ASCII, or empty
    /// fields (leading, trailing or doubled spaces).
    /// </summary>
    public static bool TrySplit(ReadOnlySpan<byte> line, out string[] fields)
    {
        fields = [];
        if (line.IsEmpty)
        {
            return false;
        }

        foreach (var b in line)
        {
            if (b is < 0x20 or > 0x7E)
            {
                return false;
            }
        }

        fields = Encoding.ASCII.GetString(line).Split(' ');
        foreach (var field in fields)
        {
            if (field.Length == 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Parses one request line (without its terminator); false with a reason for the ERROR answer.</summary>
    public static bool TryParseRequest(ReadOnlySpan<byte> line, out WitnessRequest request, out string error)
    {
        request = default;
        if (!TrySplit(line, out var f))
        {
            error = "malformed line: printable ASCII fields separated by single spaces expected";
            return false;
        }

        switch (f[0])
        {
            case "ACQUIRE":
                if (f.Length is not (4 or 5) || (f.Length == 5 && f[4] != "force"))
                {
                    error = "usage: ACQUIRE <nodeId> <epoch> <ttlMs> [force]";
                    return false;
                }

                if (!IsValidNodeId(f[1]))
                {
                    error = $"bad node id: 1-{MaxNodeIdLength} characters of [A-Za-z0-9._-]";
                    return false;
                }

                if (!TryParseLong(f[2], out var epoch) || epoch == long.MaxValue)
                {
                    error = "bad epoch: a non-negative integer";
                    return false;
                }

                if (!TryParseLong(f[3], out var ttl) || ttl is < MinTtlMs or > MaxTtlMs)
                {
                    error = $"bad ttl: {MinTtlMs}..{MaxTtlMs} ms";
                    return false;
                }

                request = new WitnessRequest(WitnessRequestKind.Acquire, f[1], epoch, (int)ttl, Force: f.Length == 5);
                break;
            case "RELEASE":
                if (f.Length != 2)
                {
                    error = "usage: RELEASE <nodeId>";
                    return false;
                }

                if (!IsValidNodeId(f[1]))
                {
                    error = $"bad node id: 1-{MaxNodeIdLength} characters of [A-Za-z0-9._-]";
                    return false;
                }

                request = new WitnessRequest(WitnessRequestKind.Release, f[1], 0, 0);
                break;
            case "STATUS":
                if (f.Length != 1)
                {
                    error = "usage: STATUS";
                    return false;
                }

                request = new WitnessRequest(WitnessRequestKind.Status, null, 0, 0);
                break;
            case "STANDBY":
                if (f.Length != 4 || f[3] is not (InSync or Behind))
                {
                    error = "usage: STANDBY <nodeId> <epoch> in-sync|behind";
                    return false;
                }

                if (!IsValidNodeId(f[1]))
                {
                    error = $"bad node id: 1-{MaxNodeIdLength} characters of [A-Za-z0-9._-]";
                    return false;
                }

                if (!TryParseLong(f[2], out var standbyEpoch))
                {
                    error = "bad epoch: a non-negative integer";
                    return false;
                }

                request = new WitnessRequest(WitnessRequestKind.Standby, f[1], standbyEpoch, 0, Behind: f[3] == Behind);
                break;
            default:
                error = "unknown request: ACQUIRE, RELEASE, STATUS or STANDBY expected";
                return false;
        }

        error = "";
        return true;
    }

    /// <summary>The longest remaining lease time a DENIED or STATUS answer may state: <see cref="int.MaxValue"/> ms (about 24.8 days).</summary>
    public const long MaxRemainingMs = int.MaxValue;

    /// <summary>
    /// Parses one response line (without its terminator) into a result; false if it is not a valid response. A response
    /// of the right shape whose number is out of the protocol's range (an epoch below 0, a granted epoch of 0 or
    /// 2^63 - 1, a TTL outside <see cref="MinTtlMs"/>..<see cref="MaxTtlMs"/>, a remaining time outside
    /// 0..<see cref="MaxRemainingMs"/>) is not valid either: <paramref name="invalid"/> then names the number, its value
    /// and the range ("TTL (9223372036854775807 ms): a granted TTL is 50..60000 ms"); it is null for an answer that is
    /// not a response at all.
    /// </summary>
    public static bool TryParseResponse(ReadOnlySpan<byte> line, out LeaseResult result, out string? invalid)
    {
        result = default;
        invalid = null;
        if (line.StartsWith("ERROR "u8))
        {
            // The reason is free text: do not split it.
            result = LeaseResult.Failed(LeaseResultKind.Error, Encoding.ASCII.GetString(line["ERROR "u8.Length..]));
            return true;
        }

        if (!TrySplit(line, out var f))
        {
            return false;
        }

        switch (f[0])
        {
            case "GRANTED" when HasBehindTail(f, 3, out var behind) && IsInteger(f[1]) && IsInteger(f[2]):
                if (!InRange(f[1], "epoch", "", 1, long.MaxValue - 1, "a granted epoch is 1..9223372036854775806", out var epoch, ref invalid)
                    || !InRange(f[2], "TTL", " ms", MinTtlMs, MaxTtlMs, $"a granted TTL is {MinTtlMs}..{MaxTtlMs} ms", out var ttl, ref invalid))
                {
                    return false;
                }

                result = new LeaseResult(LeaseResultKind.Granted, epoch, null, TimeSpan.FromMilliseconds(ttl), TimeSpan.Zero, null) { StandbyBehind = behind };
                return true;
            case "DENIED" when HasBehindTail(f, 4, out var behind) && IsValidNodeId(f[1]) && IsInteger(f[2]) && IsInteger(f[3]):
                if (!TryParseHolding(f, out var deniedEpoch, out var deniedRemaining, ref invalid))
                {
                    return false;
                }

                result = new LeaseResult(LeaseResultKind.Denied, deniedEpoch, f[1], TimeSpan.Zero, deniedRemaining, null) { StandbyBehind = behind };
                return true;
            case "RELEASED" when f.Length == 1:
                result = new LeaseResult(LeaseResultKind.Released, 0, null, TimeSpan.Zero, TimeSpan.Zero, null);
                return true;
            case "STATUS" when HasBehindTail(f, 4, out var behind) && (f[1] == NoHolder || IsValidNodeId(f[1])) && IsInteger(f[2]) && IsInteger(f[3]):
                if (!TryParseHolding(f, out var statusEpoch, out var statusRemaining, ref invalid))
                {
                    return false;
                }

                result = new LeaseResult(LeaseResultKind.Status, statusEpoch, f[1] == NoHolder ? null : f[1], TimeSpan.Zero, statusRemaining, null) { StandbyBehind = behind };
                return true;
            case "STANDBY" when f.Length == 2 && f[1] is InSync or Behind:
                result = new LeaseResult(LeaseResultKind.StandbyRecorded, 0, null, TimeSpan.Zero, TimeSpan.Zero, null) { StandbyBehind = f[1] == Behind };
                return true;
            default:
                return false;
        }
    }

    /// <summary>The holder's epoch and remaining time of a DENIED or STATUS answer (fields 2 and 3), range-checked.</summary>
    private static bool TryParseHolding(string[] f, out long epoch, out TimeSpan remaining, ref string? invalid)
    {
        remaining = TimeSpan.Zero;
        if (!InRange(f[2], "epoch", "", 0, long.MaxValue, "an epoch is 0 or more", out epoch, ref invalid)
            || !InRange(f[3], "remaining time", " ms", 0, MaxRemainingMs, $"a remaining lease time is 0..{MaxRemainingMs} ms", out var ms, ref invalid))
        {
            return false;
        }

        remaining = TimeSpan.FromMilliseconds(ms);
        return true;
    }

    /// <summary>An integer field: digits, a '-' before them allowed (a negative number is out of range, not malformed).</summary>
    private static bool IsInteger(string field)
    {
        var digits = field.AsSpan(field.StartsWith('-') ? 1 : 0);
        return !digits.IsEmpty && !digits.ContainsAnyExceptInRange('0', '9');
    }

    /// <summary>An integer field within <paramref name="min"/>..<paramref name="max"/>; else false, <paramref name="invalid"/> naming it.</summary>
    private static bool InRange(string field, string what, string unit, long min, long max, string rule, out long value, ref string? invalid)
    {
        if (long.TryParse(field, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) && value >= min && value <= max)
        {
            return true;
        }

        invalid = $"{what} ({field}{unit}): {rule}";
        return false;
    }

    public static string FormatGranted(long epoch, int ttlMs, bool standbyBehind = false) => string.Create(CultureInfo.InvariantCulture, $"GRANTED {epoch} {ttlMs}{Tail(standbyBehind)}\n");

    public static string FormatDenied(string holder, long epoch, long remainingMs, bool standbyBehind = false) => string.Create(CultureInfo.InvariantCulture, $"DENIED {holder} {epoch} {remainingMs}{Tail(standbyBehind)}\n");

    public static string FormatStatus(string? holder, long epoch, long remainingMs, bool standbyBehind = false) => string.Create(CultureInfo.InvariantCulture, $"STATUS {holder ?? NoHolder} {epoch} {remainingMs}{Tail(standbyBehind)}\n");

    public static string FormatStandby(bool behind) => behind ? "STANDBY behind\n" : "STANDBY in-sync\n";

    private const string InSync = "in-sync";
    private const string Behind = "behind";

    private static string Tail(bool standbyBehind) => standbyBehind ? " " + Behind : "";

    /// <summary>The response has <paramref name="fields"/> fields, or one more that is <c>behind</c>.</summary>
    private static bool HasBehindTail(string[] f, int fields, out bool behind)
    {
        behind = f.Length == fields + 1 && f[fields] == Behind;
        return f.Length == fields || behind;
    }

    public const string Released = "RELEASED\n";

    /// <summary>An ERROR line; the reason is cut so the line stays within <see cref="MaxLineBytes"/>.</summary>
    public static string FormatError(string reason)
    {
        const int Room = MaxLineBytes - 7; // "ERROR " and '\n'
        var clean = new StringBuilder(Math.Min(reason.Length, Room));
        foreach (var c in reason)
        {
            if (clean.Length == Room)
            {
                break;
            }

            clean.Append(c is >= ' ' and <= '~' ? c : '?');
        }

        return $"ERROR {clean}\n";
    }

    public static bool TryParseLong(string s, out long value) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
}
