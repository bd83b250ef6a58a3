using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Read-only inspection of a journal directory (the <c>fastbroker journal</c> commands): nothing is locked (the lock
/// is only looked for, <see cref="IsOpen"/>), recovered or truncated, so it is safe on a live journal or a damaged copy.
/// </summary>
public static partial class JournalInspector
{
    /// <summary>Receives each record of a dump; the record is valid only during the call.</summary>
    public delegate void RecordVisitor(JournalRecord record);

    /// <summary>
    /// Checks every segment header, seal and record CRC, and the offset sequence across segments. On a journal a process
    /// has open (<see cref="IsOpen"/>, <see cref="JournalVerifyReport.JournalOpen"/>), a record being written at the end
    /// of the last segment, and a last segment file being created (its header still blank), is the end, not damage.
    /// </summary>
    /// <remarks>
    /// A segment file listed and then gone before it was read, at the oldest end of a journal a process has open, was
    /// removed by retention: it is left out (<see cref="JournalVerifyReport.RemovedWhileReading"/>).
    /// </remarks>
    /// <exception cref="DirectoryNotFoundException">No such directory.</exception>
    /// <exception cref="JournalSegmentRemovedException">
    /// A file was removed while it was read, other than by retention at the oldest end of an open journal.
    /// </exception>
    public static JournalVerifyReport Verify(string directory)
    {
        var probe = new OpenProbe(directory);
        return Inspecting(directory, probe, static () => false, () => VerifyFiles(directory, probe));
    }

    private static JournalVerifyReport VerifyFiles(string directory, OpenProbe probe)
    {
        // An open finishes a repair that an interrupted one left in its repair log before it looks at the files: judge
        // them as the repair's steps leave them (its deletions gone, its cut segment unsealed and ending at the cut).
        RepairLog? pending = null;
        string? pendingRepair = null;
        var pendingDamaged = false;
        try
        {
            pending = RepairLog.TryRead(directory, RepairLogUse.Inspect);
        }
        catch (JournalException e) when (e.ErrorCode == JournalErrorCode.Corruption)
        {
            (pendingRepair, pendingDamaged) = (e.Message, true);
        }

        var deleted = pending?.Deletions.Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal) ?? [];
        var files = JournalRecovery.ListSegmentFiles(directory).Where(f => !deleted.Contains(Path.GetFileName(f.Path))).ToArray();
        if (pending is not null)
        {
            pendingRepair = $"{RepairLog.FileName}: an open was interrupted during its repair; the next open finishes it and reports "
                + $"{pending.Dropped.Sum(d => (long)d.RecordCount)} record(s) dropped and {pending.Removed.Count} file(s) removed";
        }

        var results = new List<SegmentVerifyResult>();
        var cutName = pending?.Cut is { } pendingCut ? Path.GetFileName(pendingCut.Path) : null;
        // As open's scan asks it of the files after damage (the segment the pending repair cuts is unsealed by then).
        var sealedOnDisk = files.Select(f => Path.GetFileName(f.Path) != cutName && HasMagicAndSeal(f.Path)).ToArray();
        var removedWhileReading = new List<string>();
        // What open decides at the first file it cannot take as it is (JournalRecovery.Scan), and it stops there: refuse
        // (a plain open; a damaged repair log is refused before any file), or remove the files from removeFrom on,
        // after cutting a torn tail in the file before them or as a lost tail from removeFrom.
        var decided = pendingDamaged;
        var refused = pendingDamaged;
        var removeFrom = int.MaxValue;
        string? removedAfter = null; // why the files after the first removed one go, for their lines
        var cutsTail = false;
        var previousUnsealed = false;
        long expectedNext = -1;
        for (var i = 0; i < files.Length; i++)
        {
            var (baseOffset, path) = files[i];
            var name = Path.GetFileName(path);
            var removed = !refused && i >= removeFrom; // a decision made at an earlier file
            var segment = OpenSegment(path, i == files.Length - 1, probe, out var error, out var unsupported, out var missing);
            if (missing)
            {
                // Removed by retention since the listing: the journal starts at the next file now.
                SkipIfRemovedByRetention(directory, path, baseOffset, probe, removedWhileReading);
                (expectedNext, previousUnsealed) = (-1, false);
                continue;
            }

            if (segment is null)
            {
                // The records after a blank identity block are still there (offsets from the file name): counted as open
                // counts them when it removes the file (RecoveryReport.Dropped), up to the first invalid one.
                var blank = !unsupported && JournalRecovery.HasBlankIdentity(path);
                var scan = blank ? Segment.ScanWithoutHeader(path, baseOffset) : new SegmentScanner.Result { EndPosition = SegmentHeader.Size };
                var problem = $"segment header at byte 0: {error ?? "blank"}";
                if (!decided && error is null && scan.RecordCount == 0 && i == files.Length - 1 && pending is null && probe.Now())
                {
                    // The last file of an open journal: a segment being created (its header is stamped before its first record).
                    results.Add(new SegmentVerifyResult(path, baseOffset, 0, 0, false, null));
                    continue;
                }

                if (!decided)
                {
                    // Open removes a blank last file (a creation that never reached the disk) and, as a lost tail, a blank
                    // header that nothing shows was ever synced (no seal of its own, no sealed segment after it); any
                    // other bad header is refused.
                    decided = true;
                    if (error is null && i == files.Length - 1)
                    {
                        (removeFrom, removed, problem) = (i, true, "segment header at byte 0: blank (never written): open removes this file");
                    }
                    else if (blank && JournalRecovery.IsUnsyncedBlank(path) && !AnySealedFrom(i + 1) && (expectedNext < 0 || baseOffset == expectedNext || previousUnsealed))
                    {
                        (removeFrom, removed, removedAfter) = (i, true, $"the lost tail at {name}");
                        problem = $"segment header at byte 0: blank, never synced: a lost tail (open removes this file and every later one, its {scan.RecordCount} record(s) reported dropped)";
                    }
                    else
                    {
                        refused = true;
                    }
                }
                else if (removed)
                {
                    problem = Join(problem, RemovedNote(removedAfter, scan.RecordCount));
                }

                results.Add(new SegmentVerifyResult(path, baseOffset, scan.RecordCount, scan.EndPosition - SegmentHeader.Size, false, problem)
                {
                    RemovedByOpen = removed,
                    DroppedRecordCount = removed ? scan.RecordCount : 0,
                });
                if (blank)
                {
                    expectedNext = baseOffset + scan.RecordCount;
                    previousUnsealed = true;
                }

                continue;
            }

            try
            {
                var bytes = segment.ScanBytes;
                var cut = pending?.Cut is { } c && Path.GetFileName(c.Path) == name ? c : default((string Path, int Position, int End)?);
                // Against the segment size, as open checks it: a file cut short is a sealed segment missing its end, not an unsealed one.
                var hasSeal = SegmentHeader.TryReadSeal(bytes, out var sealedCount, out var sealedEnd, out _);
                var isSealed = hasSeal && sealedEnd <= segment.Size && cut is null; // the repair unseals the segment it cuts
                var limit = Math.Min(isSealed ? sealedEnd : segment.MappedLength, bytes.Length);
                limit = Math.Min(limit, cut?.Position ?? limit);
                var zeroedTo = Math.Min(cut?.End ?? 0, bytes.Length); // the repair zeroes up to there
                var scan = SegmentScanner.Scan(bytes, SegmentHeader.Size, limit, segment.BaseOffset, 0, verifyCrc: true, null, int.MaxValue);
                var dataEnd = Math.Max(scan.EndPosition, zeroedTo);
                var garbageEnd = SegmentScanner.EndOfNonZero(bytes, dataEnd);
                var writing = false; // the scan stopped at the record being written at the end of an open journal
                for (var round = 0; round < 1000 && !isSealed && cut is null && i == files.Length - 1 && (scan.Stop != RecordStatus.End || garbageEnd > dataEnd) && probe.Now(); round++)
                {
                    var tail = SettleTail(segment, scan.EndPosition, int.MaxValue, baseOffset + scan.RecordCount);
                    if (tail != Tail.Record)
                    {
                        writing = tail == Tail.End;
                        break;
                    }

                    // Whole now: scan on to where the writer has got.
                    bytes = segment.ScanBytes;
                    limit = Math.Min(segment.MappedLength, bytes.Length);
                    scan = SegmentScanner.Scan(bytes, scan.EndPosition, limit, segment.BaseOffset, scan.RecordCount, verifyCrc: true, null, int.MaxValue);
                    dataEnd = scan.EndPosition;
                    garbageEnd = SegmentScanner.EndOfNonZero(bytes, dataEnd);
                }

                string? problem = null;
                var fault = Fault.None;
                if (segment.BaseOffset != baseOffset)
                {
                    (problem, fault) = ($"header base offset {segment.BaseOffset} does not match the file name", Fault.Refused);
                }
                else if (expectedNext >= 0 && baseOffset != expectedNext)
                {
                    // After an unsealed segment with no sealed one from here on: a lost tail, which open removes.
                    (problem, fault) = ($"starts at offset {baseOffset} but the previous segment ends at {expectedNext}", previousUnsealed && !AnySealedFrom(i) ? Fault.LostTail : Fault.Refused);
                }
                else if (isSealed && (scan.RecordCount != sealedCount || scan.EndPosition != sealedEnd))
                {
                    (problem, fault) = ($"{RecordLayout.Describe(scan.Stop)} at byte {scan.EndPosition} (offset {baseOffset + scan.RecordCount}; sealed with {sealedCount} records)", Fault.Refused);
                }
                else if (!isSealed && !writing && (scan.Stop != RecordStatus.End || garbageEnd > dataEnd))
                {
                    var why = scan.Stop == RecordStatus.End ? "non-zero bytes after the last record" : RecordLayout.Describe(scan.Stop);
                    (problem, fault) = ($"{why} at byte {scan.EndPosition} (offset {baseOffset + scan.RecordCount})", AnySealedFrom(i + 1) ? Fault.Refused : Fault.TornTail);
                }

                var dropped = 0;
                if (!decided && fault != Fault.None)
                {
                    decided = true;
                    refused = fault == Fault.Refused;
                    if (fault == Fault.LostTail)
                    {
                        (removeFrom, removed, removedAfter) = (i, true, $"the lost tail at {name}");
                        problem += $": a lost tail (open removes this file and every later one, its {scan.RecordCount} record(s) reported dropped)";
                    }
                    else if (fault == Fault.TornTail)
                    {
                        // Open zeroes from the stop to the last non-zero byte and reports the records it drops there (CountDropped).
                        var tailEnd = garbageEnd > dataEnd ? garbageEnd : SegmentScanner.EndOfNonZero(bytes[..limit], scan.EndPosition);
                        dropped = SegmentScanner.CountDropped(bytes, scan.EndPosition, tailEnd, baseOffset + scan.RecordCount);
                        (removeFrom, removedAfter, cutsTail) = (i + 1, $"the torn tail of {name}", true);
                        problem += $": a torn tail (open cuts the segment here, its {dropped} record(s) from there reported dropped"
                            + (i + 1 < files.Length ? ", and removes every later file)" : ")");
                    }
                }
                else if (removed)
                {
                    // A gap after the cut or lost tail is what those leave: only the removal is news.
                    problem = Join(fault == Fault.None || problem!.StartsWith("starts at offset", StringComparison.Ordinal) ? null : problem, RemovedNote(removedAfter, scan.RecordCount));
                }

                results.Add(new SegmentVerifyResult(path, baseOffset, scan.RecordCount, scan.EndPosition - SegmentHeader.Size, isSealed, problem)
                {
                    RemovedByOpen = removed,
                    DroppedRecordCount = removed ? scan.RecordCount : dropped,
                });
                expectedNext = baseOffset + scan.RecordCount;
                previousUnsealed = !isSealed;
            }
            finally
            {
                segment.ForceUnmap();
            }
        }

        // Only damage open truncates (a torn or lost unsealed tail with no sealed segment after it, a blank last file) is
        // a damaged tail; a bad header, a name that is not the base offset, damage in or followed by a sealed segment, a
        // gap after a sealed one, or a damaged repair log is refused wherever it is, and a refusing open reports nothing.
        var changes = !refused && (removeFrom < files.Length || cutsTail || pending is { Dropped.Count: > 0 } || pending is { Removed.Count: > 0 });
        var removedFiles = new List<string>();
        long droppedRecords = 0;
        if (!refused)
        {
            removedFiles.AddRange(pending?.Removed ?? []);
            removedFiles.AddRange(results.Where(r => r.RemovedByOpen).Select(r => r.FilePath));
            droppedRecords = (pending?.Dropped.Sum(d => (long)d.RecordCount) ?? 0) + results.Sum(r => (long)r.DroppedRecordCount);
        }

        return new JournalVerifyReport(results, refused, changes, pendingRepair, removedFiles, droppedRecords) { JournalOpen = probe.Open, RemovedWhileReading = removedWhileReading };

        // A file removed since the listing has no seal to count: its open says what became of it.
        static bool HasMagicAndSeal(string path)
        {
            try
            {
                return JournalRecovery.HasMagicAndSeal(path);
            }
            catch (IOException e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return false;
            }
        }

        bool AnySealedFrom(int first) => first < sealedOnDisk.Length && Array.IndexOf(sealedOnDisk, true, first) >= 0;

        static string RemovedNote(string? after, int records) =>
            $"open removes this file (after {after ?? "the damage before it"}), its {records} record(s) reported dropped";

        static string Join(string? problem, string note) => problem is null ? note : $"{problem}; {note}";
    }

    /// <summary>How open's scan takes a file's damage.</summary>
    private enum Fault
    {
        None,
        Refused,
        LostTail,
        TornTail,
    }

    /// <summary>
    /// Visits up to <paramref name="maxCount"/> records from <paramref name="fromOffset"/>, or every record stamped at or
    /// after <paramref name="fromTimestamp"/> (Unix ms) in log order, leaving out those stamped earlier wherever they are (a
    /// standby's copied records may be older than one before them), checking CRCs. Stops at the first damage, as open's scan
    /// meets it, and says where and why in <paramref name="problem"/> (null when it stopped at the end or at
    /// <paramref name="maxCount"/>): a damaged record, non-zero bytes after the last record of an unsealed segment (a
    /// torn tail), a sealed segment whose records end before its seal says, a segment that does not start where the one
    /// before it ends (a lost tail or a gap), or a bad segment header; no record after it is visited, whether open cuts,
    /// removes or refuses it. From an offset, the segment before the one holding it is checked too (not visited), so a
    /// dump that starts just past such damage stops at it. Returns the number of records visited. With a repair log that
    /// an interrupted open left, the records its repair drops are not visited: the next open finishes it. Reads only.
    /// On a journal a process has open (<see cref="IsOpen"/>), a record being written at the end of the last segment,
    /// and a last segment file being created (its header still blank), is the end, not damage. A segment file listed
    /// and then gone before it was read, at the oldest end of a journal a process has open, was removed by retention:
    /// the dump goes on from the next segment's first record.
    /// </summary>
    /// <exception cref="JournalSegmentRemovedException">
    /// A file was removed while it was read, other than by retention at the oldest end of an open journal.
    /// </exception>
    public static long Dump(string directory, long? fromOffset, long? fromTimestamp, long maxCount, RecordVisitor visitor, out string? problem) =>
        Dump(directory, fromOffset, fromTimestamp, maxCount, visitor, out problem, out _);

    /// <summary>
    /// As <see cref="Dump(string, long?, long?, long, RecordVisitor, out string?)"/>, and says in
    /// <paramref name="journalOpen"/> whether a process had the journal open (<see cref="IsOpen"/>): then the end of its
    /// last segment moves as it appends, and a record being written there (its length word stored, not yet all the
    /// rest) was taken as the end, not as damage; damage before it still stops the dump.
    /// </summary>
    public static long Dump(string directory, long? fromOffset, long? fromTimestamp, long maxCount, RecordVisitor visitor, out string? problem, out bool journalOpen) =>
        Dump(directory, fromOffset, fromTimestamp, maxCount, visitor, out problem, out journalOpen, out _);

    /// <summary>
    /// As <see cref="Dump(string, long?, long?, long, RecordVisitor, out string?, out bool)"/>, and lists in
    /// <paramref name="removedWhileReading"/> the segment files that were listed and then gone before they were read, at
    /// the oldest end of a journal a process has open: retention removed them, and the dump went on from the first
    /// record of the next file (their records, those from <paramref name="fromOffset"/> included, are not visited).
    /// </summary>
    /// <exception cref="JournalSegmentRemovedException">
    /// A file was removed while it was read, other than by retention at the oldest end of an open journal; the records
    /// before it were visited. Only a segment file of <paramref name="directory"/> found missing by the dump's own reads:
    /// whatever <paramref name="visitor"/> throws, its own <see cref="FileNotFoundException"/> included, ends the dump as
    /// it is.
    /// </exception>
    public static long Dump(string directory, long? fromOffset, long? fromTimestamp, long maxCount, RecordVisitor visitor, out string? problem, out bool journalOpen, out IReadOnlyList<string> removedWhileReading) =>
        Dump(directory, fromOffset, fromTimestamp, maxCount, visitor, pastDamage: null, out problem, out journalOpen, out removedWhileReading);

    private static long DumpFiles(string directory, long? fromOffset, long? fromTimestamp, long maxCount, RecordVisitor visitor, Action<string>? pastDamage, OpenProbe probe, List<string> removedWhileReading, out string? problem)
    {
        problem = null;
        // The records a repair that an open left unfinished drops are gone for good (the next open finishes it, whatever
        // its options): its deleted files are left out and its cut segment ends at the cut. A damaged log is ignored
        // here (open refuses it, verify says so): the files are dumped as they are.
        RepairLog? pending = null;
        try
        {
            pending = RepairLog.TryRead(directory, RepairLogUse.Inspect);
        }
        catch (JournalException e) when (e.ErrorCode == JournalErrorCode.Corruption)
        {
        }

        var deleted = pending?.Deletions.Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal) ?? [];
        var cutName = pending?.Cut is { } pendingCut ? Path.GetFileName(pendingCut.Path) : null;
        var files = JournalRecovery.ListSegmentFiles(directory).Where(f => !deleted.Contains(Path.GetFileName(f.Path))).ToArray();
        var first = 0;
        if (fromOffset is { } from)
        {
            for (var i = 0; i < files.Length; i++)
            {
                if (files[i].BaseOffset <= from)
                {
                    first = i;
                }
            }

            // The segment before: a torn tail in it, or a gap after it, makes the records from here on ones open drops.
            first = Math.Max(0, first - 1);
        }

        long visited = 0;
        long expectedNext = -1; // where the previous segment's records end: the next one must start there
        for (var i = first; i < files.Length && visited < maxCount; i++)
        {
            var (baseOffset, path) = files[i];
            var name = Path.GetFileName(path);
            if (expectedNext >= 0 && baseOffset != expectedNext)
            {
                problem = $"{name}: starts at offset {baseOffset} but the previous segment ends at {expectedNext} (offsets [{expectedNext}, {baseOffset}) are missing)";
                return visited;
            }

            var segment = OpenSegment(path, i == files.Length - 1, probe, out var error, out _, out var missing);
            if (missing)
            {
                // Removed by retention since the listing: the journal starts at the next file now.
                SkipIfRemovedByRetention(directory, path, baseOffset, probe, removedWhileReading);
                expectedNext = -1;
                continue;
            }

            if (segment is null)
            {
                if (error is null && i == files.Length - 1 && probe.Now())
                {
                    return visited; // a segment being created: the writer stamps its header before its first record
                }

                problem = $"{name}: bad segment header: {error ?? "blank"}";
                return visited;
            }

            try
            {
                if (segment.BaseOffset != baseOffset)
                {
                    problem = $"{name}: header base offset {segment.BaseOffset} does not match the file name";
                    return visited;
                }

                var bytes = segment.ScanBytes;
                var cut = name == cutName ? pending!.Cut!.Value.Position : int.MaxValue; // unsealed, ends there
                // Against the segment size, as open and verify check it: a file cut short is a sealed segment missing its end.
                var isSealed = SegmentHeader.TryReadSeal(bytes, out var sealedCount, out var sealedEnd, out var lastTimestamp) && sealedEnd <= segment.Size && cut == int.MaxValue;
                // Skipped unread only under a seal whose last timestamp bounds every record (one an older version wrote may not).
                if (isSealed && fromTimestamp is { } ts && lastTimestamp < ts && SegmentHeader.SealBoundsNewest(bytes))
                {
                    expectedNext = baseOffset + sealedCount;
                    continue;
                }

                var limit = Math.Min(Math.Min(isSealed ? sealedEnd : segment.MappedLength, bytes.Length), cut);
                var position = SegmentHeader.Size;
                var count = 0;
                while (visited < maxCount)
                {
                    var status = RecordLayout.Check(bytes, position, limit, baseOffset + count, verifyCrc: true, out var length);
                    // Read once: on a journal being appended to, a second look may see what the first did not.
                    var trailing = status == RecordStatus.End && !isSealed && SegmentScanner.EndOfNonZero(bytes[..limit], position) > position;
                    if ((trailing || status is not (RecordStatus.Ok or RecordStatus.End)) && !isSealed && cut == int.MaxValue && i == files.Length - 1 && probe.Now())
                    {
                        // The last segment of an open journal: what is there may be the record being written.
                        var tail = SettleTail(segment, position, cut, baseOffset + count);
                        if (tail == Tail.End)
                        {
                            break;
                        }

                        if (tail == Tail.Record)
                        {
                            bytes = segment.ScanBytes; // read on to where the writer has got now
                            limit = Math.Min(segment.MappedLength, bytes.Length);
                            continue;
                        }
                    }

                    if (status == RecordStatus.End)
                    {
                        // The end of the written part: of the seal's records, and of every non-zero byte of an unsealed
                        // segment (open cuts what is after it as a torn tail).
                        if (isSealed && (count != sealedCount || position != sealedEnd))
                        {
                            problem = $"{name}: {RecordLayout.Describe(status)} at byte {position} (offset {baseOffset + count}; sealed with {sealedCount} records)";
                            return visited;
                        }

                        if (trailing)
                        {
                            problem = $"{name}: non-zero bytes after the last record at byte {position} (offset {baseOffset + count}): a torn tail";
                            return visited;
                        }

                        expectedNext = baseOffset + count;
                        break;
                    }

                    if (status != RecordStatus.Ok)
                    {
                        problem = $"{name}: {RecordLayout.Describe(status)} at byte {position} (offset {baseOffset + count})";
                        if (pastDamage is null)
                        {
                            return visited;
                        }

                        (position, count) = PassDamage(bytes, position, limit, baseOffset, count, problem, pastDamage);
                        (problem, expectedNext) = (null, position < 0 ? -1 : expectedNext);
                        if (position < 0)
                        {
                            break; // nothing after it in this segment checks: on with the next one
                        }

                        continue;
                    }

                    var record = new JournalRecord(bytes.Slice(position, length));
                    if ((fromOffset is null || record.Offset >= fromOffset) && (fromTimestamp is null || record.Timestamp >= fromTimestamp))
                    {
                        visitor(record);
                        visited++;
                    }

                    position += RecordLayout.Align(length);
                    count++;
                }
            }
            finally
            {
                segment.ForceUnmap();
            }
        }

        return visited;
    }
}
