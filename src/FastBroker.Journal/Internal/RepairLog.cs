using System.Globalization;
using System.Text;

namespace FastBroker.Journal.Internal;

/// <summary>
/// <c>repair.log</c>: a repair's intent and report, made durable before recovery destroys anything (as a database logs
/// its own recovery), so that a crash part-way through an open neither loses the report of what was dropped nor leaves
/// a half-done repair for the next open to refuse. The next open finishes the steps (each is idempotent: delete a
/// file if it is there, unseal and zero a range), reports the entries as its own, and removes the file, durably,
/// before anything can be appended. UTF-8 lines, names relative to the journal directory:
/// <code>
/// fastbroker-journal-repair 1
/// dropped &lt;file&gt; &lt;start&gt; &lt;end&gt; &lt;first offset&gt; &lt;records&gt; &lt;reason…&gt;
/// removed &lt;file&gt;                       (reported in RemovedFiles)
/// delete &lt;file&gt;                        (step: delete the segment file and its index file)
/// cut &lt;file&gt; &lt;position&gt; &lt;end&gt;          (step: unseal the segment, zero [position, end))
/// crc32c &lt;hex of the CRC32C of every byte before this line&gt;
/// </code>
/// </summary>
internal sealed class RepairLog
{
    internal const string FileName = "repair.log";
    private const string Magic = "fastbroker-journal-repair 1";

    /// <summary>Dropped ranges, in report order (full paths).</summary>
    internal List<DroppedRange> Dropped { get; } = [];

    /// <summary>Removed files, in report order (full paths).</summary>
    internal List<string> Removed { get; } = [];

    /// <summary>Step: segment files to delete (full paths), deleted highest first.</summary>
    internal List<string> Deletions { get; } = [];

    /// <summary>Step: the segment that becomes the tail, unsealed and zeroed from <c>Position</c> to <c>End</c>.</summary>
    internal (string Path, int Position, int End)? Cut { get; set; }

    internal bool HasSteps => Deletions.Count > 0 || Cut is not null;

    internal static string PathIn(string directory) => Path.Combine(directory, FileName);

    /// <summary>The log of an interrupted repair, or null when there is none.</summary>
    /// <param name="directory">The journal directory.</param>
    /// <param name="use">Who reads it: a damaged log's message names what <paramref name="use"/> refuses.</param>
    /// <exception cref="JournalException"><see cref="JournalErrorCode.Corruption"/>: the file is damaged.</exception>
    internal static RepairLog? TryRead(string directory, RepairLogUse use)
    {
        var path = PathIn(directory);
        if (!File.Exists(path))
        {
            return null;
        }

        var bytes = File.ReadAllBytes(path);
        var crcLine = bytes.AsSpan().LastIndexOf("\ncrc32c "u8) + 1;
        if (crcLine <= 0 || !bytes.AsSpan().StartsWith(Encoding.UTF8.GetBytes(Magic + "\n"))
            || !uint.TryParse(Encoding.UTF8.GetString(bytes.AsSpan(crcLine + 7)).TrimEnd('\n'), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var crc)
            || crc != Crc32C.Compute(bytes.AsSpan(0, crcLine)))
        {
            throw Damaged(path, "bad magic or CRC32C", use);
        }

        var log = new RepairLog();
        foreach (var line in Encoding.UTF8.GetString(bytes.AsSpan(0, crcLine)).Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            var f = line.Split(' ', 7);
            var file = f.Length > 1 ? Path.Combine(directory, Path.GetFileName(f[1])) : "";
            switch (f[0])
            {
                case "dropped" when f.Length == 7:
                    log.Dropped.Add(new DroppedRange(file, Long(f[2]), Long(f[3]), Long(f[4]), (int)Long(f[5]), f[6]));
                    break;
                case "removed" when f.Length == 2:
                    log.Removed.Add(file);
                    break;
                case "delete" when f.Length == 2:
                    log.Deletions.Add(file);
                    break;
                case "cut" when f.Length == 4:
                    log.Cut = (file, (int)Long(f[2]), (int)Long(f[3]));
                    break;
                default:
                    throw Damaged(path, $"unreadable line '{line}'", use);
            }
        }

        return log;

        long Long(string s) => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : throw Damaged(path, $"bad number '{s}'", use);
    }

    /// <summary>Writes the log durably (temporary file, fsync, rename, directory fsync): only then may a step start.</summary>
    internal void Write(string directory)
    {
        var sb = new StringBuilder().Append(Magic).Append('\n');
        foreach (var d in Dropped)
        {
            sb.Append(CultureInfo.InvariantCulture, $"dropped {Path.GetFileName(d.FilePath)} {d.StartPosition} {d.EndPosition} {d.FirstOffset} {d.RecordCount} {OneLine(d.Reason)}\n");
        }

        foreach (var r in Removed)
        {
            sb.Append("removed ").Append(Path.GetFileName(r)).Append('\n');
        }

        foreach (var d in Deletions)
        {
            sb.Append("delete ").Append(Path.GetFileName(d)).Append('\n');
        }

        if (Cut is { } cut)
        {
            sb.Append(CultureInfo.InvariantCulture, $"cut {Path.GetFileName(cut.Path)} {cut.Position} {cut.End}\n");
        }

        var body = Encoding.UTF8.GetBytes(sb.ToString());
        var crc = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"crc32c {Crc32C.Compute(body):x8}\n"));
        DurableFile.WriteAllBytes(PathIn(directory), [.. body, .. crc]);
    }

    /// <summary>
    /// Does the steps: deletes the files (highest first, index files first), fsyncs the directory, then unseals the
    /// cut segment (synced) and zeroes its range (synced). Each step may have been done already by an open that crashed.
    /// <paramref name="cutSegment"/> is the open, writable cut segment when the caller holds it (else it is opened here).
    /// </summary>
    internal void DoSteps(string directory, Segment? cutSegment, Action<RepairStep>? hook)
    {
        hook?.Invoke(RepairStep.LogWritten);
        foreach (var path in Deletions.OrderByDescending(p => p, StringComparer.Ordinal))
        {
            Segment.TryDelete(IndexFile.PathFor(path)); // index first: a stale one must never outlive its segment
            if (File.Exists(path))
            {
                File.Delete(path);
            }
        }

        Native.SyncDirectory(directory);
        hook?.Invoke(RepairStep.FilesDeleted);
        if (Cut is not { } cut)
        {
            return;
        }

        var segment = cutSegment;
        if (segment is null && File.Exists(cut.Path))
        {
            segment = Segment.Open(cut.Path, writable: true, 4, out _, out _);
        }

        if (segment is null)
        {
            return; // a later step (of a later repair) removed it
        }

        try
        {
            Segment.TryDelete(IndexFile.PathFor(cut.Path)); // describes the old end; rebuilt when the segment is sealed again
            var bytes = segment.WritableBytes;
            if (SegmentHeader.TryReadSeal(bytes, out _, out _, out _))
            {
                bytes.Slice(64, 64).Clear(); // unseal first: a sealed segment with zeroed records is corrupt
                segment.Sync(0, SegmentHeader.Size);
            }

            hook?.Invoke(RepairStep.Unsealed);
            segment.ZeroAndSync(Math.Min(cut.Position, bytes.Length), Math.Min(cut.End, bytes.Length));
            hook?.Invoke(RepairStep.Zeroed);
        }
        finally
        {
            if (segment != cutSegment)
            {
                segment.ForceUnmap();
            }
        }
    }

    /// <summary>The open that reported the repair is done: removes the log, durably, before anything is appended.</summary>
    internal static void Complete(string directory)
    {
        var path = PathIn(directory);
        if (File.Exists(path))
        {
            File.Delete(path);
            Native.SyncDirectory(directory); // a log that came back after a power loss would redo its steps over new records
        }
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    private static JournalException Damaged(string path, string why, RepairLogUse use)
    {
        const string Consequence = "(the report of that repair is then lost, and an unfinished repair is judged afresh)";
        var refusal = use switch
        {
            RepairLogUse.Open => $"Refusing to open the journal: delete it to open the journal without it {Consequence}.",
            RepairLogUse.TruncateFrom => $"Refusing to truncate the journal (TruncateFrom): delete it to truncate the journal without it {Consequence}.",
            _ => $"Opening or truncating the journal (TruncateFrom) is refused while it is there: delete it to open the journal without it {Consequence}.",
        };
        return new(JournalErrorCode.Corruption, $"The repair log '{path}' of an interrupted journal repair is damaged ({why}). {refusal}");
    }
}
