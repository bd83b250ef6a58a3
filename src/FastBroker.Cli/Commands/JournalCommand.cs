using System.CommandLine;
using System.Globalization;
using System.Text;
using FastBroker.Journal;

namespace FastBroker.Cli.Commands;

/// <summary>
/// <c>fastbroker journal dump|verify</c>: look inside a journal directory (read-only, safe on a live journal: a record
/// being written at the end of a journal a process has open is its end, not damage).
/// </summary>
internal static class JournalCommand
{
    /// <summary>
    /// dump and verify: a segment file was removed while the journal was read, other than by retention at the oldest end
    /// of a journal open in another process (which is skipped and said on stderr). Not 1 or 2: nothing says the journal
    /// is damaged; the files changed under the command, which can be run again.
    /// </summary>
    private const int RemovedWhileReading = 4;

    public static Command Create()
    {
        var journal = new Command("journal", "Inspect a journal directory (dump records, verify checksums).");
        journal.Subcommands.Add(Dump());
        journal.Subcommands.Add(Verify());
        return journal;
    }

    private static Command Dump()
    {
        var dir = new Argument<string>("dir") { Description = "The journal directory." };
        var fromOffset = new Option<long?>("--from-offset") { Description = "Start at this offset." };
        var fromTime = new Option<string?>("--from-time") { Description = "Print only the records stamped at or after this time, every one of them, in log order (one stamped earlier after them is left out; ISO 8601, or Unix milliseconds)." };
        var count = new Option<long?>("--count") { Description = "Print at most this many records." };
        var hex = new Option<bool>("--hex") { Description = "Print keys, header values and payloads as hex even when they are text." };
        var pastDamage = new Option<bool>("--past-damage") { Description = "Do not stop at a damaged record: skip it, go on at the next record of its segment whose header and CRC32C check (or the next segment), and say on stderr what was skipped; the exit code is still 1." };
        OptionRules.AtLeast(fromOffset, 0L);
        OptionRules.AtLeast(count, 0L);
        var cmd = new Command("dump", "Print records: offset, time, flags, key, headers, payload; exit 0, 1 stopped at damage (a damaged record, a torn or lost tail, a gap between segments, a bad segment header: the records before it are printed, none after it), 3 nothing to dump (no such directory, or no segment file in it), 4 a segment file was removed while it was read (other than by retention at the oldest end of a journal open in another process, which is skipped: the dump goes on from the next segment). On a journal open in another process, a record being written at its end is the end, not damage.") { dir, fromOffset, fromTime, count, hex, pastDamage };
        cmd.SetAction(parse =>
        {
            var path = parse.GetValue(dir)!;
            if (NothingToRead(path) is { } why)
            {
                Console.Error.WriteLine(why);
                return 3; // as verify: nothing was read, which an empty journal's exit 0 must not look like
            }

            long? fromTs = null;
            if (parse.GetValue(fromTime) is { } t)
            {
                if (long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms))
                {
                    fromTs = ms;
                }
                else if (DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
                {
                    fromTs = ReadStart.CeilingMilliseconds(time); // records stamped at or after it: rounded up
                }
                else
                {
                    Console.Error.WriteLine($"--from-time: cannot parse '{t}' (ISO 8601 or Unix milliseconds)");
                    return ExitCodes.Usage;
                }
            }

            if (parse.GetValue(fromOffset) is not null && fromTs is not null)
            {
                Console.Error.WriteLine("use --from-offset or --from-time, not both");
                return ExitCodes.Usage;
            }

            var asHex = parse.GetValue(hex);
            var output = Console.Out;
            var line = new StringBuilder(256);
            long n;
            long printed = 0;
            string? problem;
            bool journalOpen;
            IReadOnlyList<string> removed;
            long skipped = 0;
            Action<string>? onDamage = parse.GetValue(pastDamage)
                ? text =>
                {
                    skipped++;
                    Console.Error.WriteLine($"after {printed} record(s): {text}");
                }
            : null;
            try
            {
                n = JournalInspector.Dump(path, parse.GetValue(fromOffset), fromTs, parse.GetValue(count) ?? long.MaxValue, record =>
                {
                    line.Clear();
                    FormatRecord(line, record, asHex);
                    output.WriteLine(line.ToString());
                    printed++;
                }, onDamage, out problem, out journalOpen, out removed);
            }
            catch (JournalSegmentRemovedException e)
            {
                if (e.JournalOpen)
                {
                    Console.Error.WriteLine(OpenNote(path));
                }

                Console.Error.WriteLine($"stopped after {printed} record(s): {e.Message}; no record after it is printed");
                return RemovedWhileReading;
            }

            if (journalOpen)
            {
                Console.Error.WriteLine(OpenNote(path));
            }

            foreach (var file in removed)
            {
                Console.Error.WriteLine($"{Path.GetFileName(file)}: {RemovedByRetention}: its records are not printed; the dump goes on from the first record of the next segment");
            }

            if (problem is not null)
            {
                // Where and why, as verify says it; whether open cuts, removes or refuses what follows is verify's to tell.
                Console.Error.WriteLine($"stopped after {n} record(s) at damage: {problem}; no record after it is printed (run 'fastbroker journal verify {path}' to see what opening the journal does with it)");
                return 1;
            }

            if (skipped > 0)
            {
                Console.Error.WriteLine($"printed {n} record(s) past {skipped} damaged place(s) (--past-damage); the records skipped are not printed (run 'fastbroker journal verify {path}' to see what opening the journal does with them)");
                return 1;
            }

            return 0;
        });
        return cmd;
    }

    private static Command Verify()
    {
        var dir = new Argument<string>("dir") { Description = "The journal directory." };
        var cmd = new Command("verify", "Check every segment header, seal and record CRC32C; exit 0 intact, 1 corrupt, 2 damaged tail (open would truncate it), 3 nothing to check (no such directory, or no segment file in it), 4 a segment file was removed while it was read (other than by retention at the oldest end of a journal open in another process, which is skipped: the journal starts after it). On a journal open in another process, a record being written at its end is the end, not damage.") { dir };
        cmd.SetAction(parse =>
        {
            // 3, not 2: exit 2 says "damaged tail", and a script acting on it must not take a mistyped path for one.
            var path = parse.GetValue(dir)!;
            if (NothingToRead(path) is { } why)
            {
                // Not "OK": nothing was checked. The usual slip is naming the topic's directory instead of its journal.
                Console.Error.WriteLine(why);
                return 3;
            }

            JournalVerifyReport report;
            try
            {
                report = JournalInspector.Verify(path);
            }
            catch (JournalSegmentRemovedException e)
            {
                if (e.JournalOpen)
                {
                    Console.Error.WriteLine(OpenNote(path));
                }

                Console.Error.WriteLine($"{e.Message}; nothing is concluded about the journal");
                return RemovedWhileReading;
            }

            foreach (var file in report.RemovedWhileReading)
            {
                Console.Error.WriteLine($"{Path.GetFileName(file)}: {RemovedByRetention}: not checked; the journal starts after it now");
            }

            if (report.Segments.Count == 0)
            {
                Console.Error.WriteLine($"no journal segment in {path}: nothing to verify");
                return 3;
            }

            foreach (var s in report.Segments)
            {
                Console.WriteLine($"{Path.GetFileName(s.FilePath)}  {(s.Sealed ? "sealed  " : "unsealed")}  records {s.RecordCount,10}  bytes {s.Bytes,12}  {s.Problem ?? "ok"}");
            }

            if (report.PendingRepair is { } pending)
            {
                Console.WriteLine(pending);
            }

            if (report.JournalOpen)
            {
                Console.Error.WriteLine(OpenNote(path));
            }

            var verdict = report.IsCorrupt ? "CORRUPT (the journal will refuse to open)"
                : report.HasDamagedTail ? "DAMAGED TAIL (opening the journal truncates it and reports what was dropped)"
                : "OK";
            // What open will report (RecoveryReport): the lines above say which files it removes and where it cuts.
            var drops = report.HasDamagedTail ? $"; open reports {report.DroppedRecordCount} record(s) dropped and {report.RemovedFiles.Count} file(s) removed" : "";
            Console.WriteLine($"{report.Segments.Count} segment(s), {report.RecordCount} record(s), {report.Bytes} bytes{drops}: {verdict}");
            return report.ExitCode;
        });
        return cmd;
    }

    /// <summary>What dump and verify say on stderr when a process has the journal open (its journal.lock held).</summary>
    private static string OpenNote(string path) =>
        $"the journal in {path} is open in another process (its journal.lock is held), so its end may move as records are appended: "
        + "a record being written at the end of the last segment is taken as the end, not as damage";

    /// <summary>What dump and verify say of a segment file retention removed before they read it.</summary>
    private const string RemovedByRetention = "removed by retention while reading (the oldest segment of a journal open in another process)";

    /// <summary>Why <paramref name="path"/> holds no journal to read (no such directory, no segment file), or null.</summary>
    private static string? NothingToRead(string path) =>
        !Directory.Exists(path) ? $"no such directory: {path}"
        : !Directory.EnumerateFiles(path, "*.seg").Any() ? $"no journal segment (*.seg) in {path}: nothing to read (a topic's journal is <data>/topics/<topic>/journal)"
        : null;

    /// <summary>"tombstone|producer", bits without a name in hex ("control|0x8000").</summary>
    private static void FlagNames(StringBuilder sb, RecordFlags flags)
    {
        (RecordFlags Bit, string Name)[] known = [(RecordFlags.Tombstone, "tombstone"), (RecordFlags.Control, "control"), (RecordFlags.HasExpiry, "expires"), (RecordFlags.HasProducer, "producer")];
        var rest = (ushort)flags;
        var first = true;
        foreach (var (bit, name) in known)
        {
            if ((flags & bit) != 0)
            {
                sb.Append(first ? "" : "|").Append(name);
                rest &= (ushort)~(ushort)bit;
                first = false;
            }
        }

        if (rest != 0)
        {
            sb.Append(first ? "" : "|").Append("0x").Append(rest.ToString("x4", CultureInfo.InvariantCulture));
        }
    }

    private static void FormatRecord(StringBuilder sb, JournalRecord record, bool hex)
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(record.Timestamp).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        sb.Append("offset=").Append(record.Offset.ToString(CultureInfo.InvariantCulture)).Append(" time=").Append(time);
        if (record.Flags != RecordFlags.None)
        {
            sb.Append(" flags=");
            FlagNames(sb, record.Flags);
        }

        if (!record.Key.IsEmpty)
        {
            sb.Append(" key=");
            Bytes(sb, record.Key, hex);
        }

        if (!record.Headers.IsEmpty)
        {
            sb.Append(" headers={");
            var reader = new RecordHeaderReader(record.Headers);
            var first = true;
            while (reader.TryReadNext(out var name, out var value))
            {
                sb.Append(first ? "" : ", ").Append(Encoding.UTF8.GetString(name)).Append('=');
                Bytes(sb, value, hex);
                first = false;
            }

            if (!reader.End)
            {
                sb.Append(first ? "" : ", ").Append("raw=").Append(Convert.ToHexString(record.Headers));
            }

            sb.Append('}');
        }

        sb.Append(" payload(").Append(record.Payload.Length.ToString(CultureInfo.InvariantCulture)).Append(")=");
        Bytes(sb, record.Payload, hex);
    }

    private static void Bytes(StringBuilder sb, ReadOnlySpan<byte> bytes, bool hex)
    {
        if (!hex && IsPrintableUtf8(bytes))
        {
            sb.Append('"').Append(Encoding.UTF8.GetString(bytes)).Append('"');
        }
        else
        {
            sb.Append("0x").Append(Convert.ToHexString(bytes));
        }
    }

    private static bool IsPrintableUtf8(ReadOnlySpan<byte> bytes)
    {
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            return false;
        }

        foreach (var b in bytes)
        {
            if (b < 0x20 || b == 0x7F || b == (byte)'"')
            {
                return false;
            }
        }

        return true;
    }
}
