using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>
/// Read-only inspection of a journal directory (the <c>fastbroker journal</c> commands): nothing is locked,
/// recovered or truncated, so it is safe on a live journal or a damaged copy.
/// </summary>
public static class JournalInspector
{
    /// <summary>Receives each record of a dump; the record is valid only during the call.</summary>
    public delegate void RecordVisitor(JournalRecord record);

    /// <summary>Checks every segment header, seal and record CRC, and the offset sequence across segments.</summary>
    /// <exception cref="DirectoryNotFoundException">No such directory.</exception>
    public static JournalVerifyReport Verify(string directory)
    {
        // An open finishes a repair that an interrupted one left in its repair log before it looks at the files: judge
        // them as the repair's steps leave them (its deletions gone, its cut segment unsealed and ending at the cut).
        RepairLog? pending = null;
        string? pendingRepair = null;
        var pendingDamaged = false;
        try
        {
            pending = RepairLog.TryRead(directory);
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
        var sealedFlags = new bool[files.Length];
        var firstProblem = -1;
        var firstProblemRefused = false; // damage that open refuses wherever it is, even with no sealed segment after it
        var previousUnsealed = false;
        long expectedNext = -1;
        for (var i = 0; i < files.Length; i++)
        {
            var (baseOffset, path) = files[i];
            var segment = Segment.Open(path, writable: false, 4, out var error, out var unsupported);
            if (segment is null)
            {
                // The records after a blank identity block are still there (offsets from the file name): counted as open
                // counts them when it removes the file (RecoveryReport.Dropped), up to the first invalid one.
                var blank = !unsupported && JournalRecovery.HasBlankIdentity(path);
                var scan = blank ? Segment.ScanWithoutHeader(path, baseOffset) : new SegmentScanner.Result { EndPosition = SegmentHeader.Size };
                var blankLast = error is null && i == files.Length - 1;
                var lostTail = blank && JournalRecovery.IsUnsyncedBlank(path) && (expectedNext < 0 || baseOffset == expectedNext || previousUnsealed);
                var problem = blankLast ? "segment header at byte 0: blank (never written)"
                    : lostTail ? $"segment header at byte 0: blank, never synced: a lost tail (open removes this file and every later one, its {scan.RecordCount} record(s) reported dropped)"
                    : $"segment header at byte 0: {error ?? "blank"}";
                results.Add(new SegmentVerifyResult(path, baseOffset, scan.RecordCount, scan.EndPosition - SegmentHeader.Size, false, problem));
                if (firstProblem < 0)
                {
                    // Open removes a blank last file (a creation that never reached the disk) and, as a lost tail, a blank
                    // header that nothing shows was ever synced (a sealed segment after it is checked below); any other
                    // bad header is refused.
                    firstProblem = i;
                    firstProblemRefused = !blankLast && !lostTail;
                }

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
                var cut = pending?.Cut is { } c && Path.GetFileName(c.Path) == Path.GetFileName(path) ? c : default((string Path, int Position, int End)?);
                // Against the segment size, as open checks it: a file cut short is a sealed segment missing its end, not an unsealed one.
                var hasSeal = SegmentHeader.TryReadSeal(bytes, out var sealedCount, out var sealedEnd, out _);
                var isSealed = hasSeal && sealedEnd <= segment.Size && cut is null; // the repair unseals the segment it cuts
                sealedFlags[i] = isSealed;
                var limit = Math.Min(isSealed ? sealedEnd : segment.MappedLength, bytes.Length);
                limit = Math.Min(limit, cut?.Position ?? limit);
                var zeroedTo = Math.Min(cut?.End ?? 0, bytes.Length); // the repair zeroes up to there
                var scan = SegmentScanner.Scan(bytes, SegmentHeader.Size, limit, segment.BaseOffset, 0, verifyCrc: true, null, int.MaxValue);
                string? problem = null;
                var refused = false;
                if (segment.BaseOffset != baseOffset)
                {
                    problem = $"header base offset {segment.BaseOffset} does not match the file name";
                    refused = true;
                }
                else if (expectedNext >= 0 && baseOffset != expectedNext)
                {
                    problem = $"starts at offset {baseOffset} but the previous segment ends at {expectedNext}";
                    refused = !previousUnsealed; // after an unsealed segment: a lost tail, which open removes
                }
                else if (isSealed && (scan.RecordCount != sealedCount || scan.EndPosition != sealedEnd))
                {
                    problem = $"{RecordLayout.Describe(scan.Stop)} at byte {scan.EndPosition} (offset {baseOffset + scan.RecordCount}; sealed with {sealedCount} records)";
                }
                else if (!isSealed && (scan.Stop != RecordStatus.End || SegmentScanner.EndOfNonZero(bytes, Math.Max(scan.EndPosition, zeroedTo)) > Math.Max(scan.EndPosition, zeroedTo)))
                {
                    var why = scan.Stop == RecordStatus.End ? "non-zero bytes after the last record" : RecordLayout.Describe(scan.Stop);
                    problem = $"{why} at byte {scan.EndPosition} (offset {baseOffset + scan.RecordCount})";
                }

                if (problem is not null && firstProblem < 0)
                {
                    firstProblem = i;
                    firstProblemRefused = refused;
                }

                results.Add(new SegmentVerifyResult(path, baseOffset, scan.RecordCount, scan.EndPosition - SegmentHeader.Size, isSealed, problem));
                expectedNext = baseOffset + scan.RecordCount;
                previousUnsealed = !isSealed;
            }
            finally
            {
                segment.ForceUnmap();
            }
        }

        var corrupt = false;
        var damagedTail = false;
        if (firstProblem >= 0)
        {
            // As open decides (JournalRecovery): only damage in unsealed segments with no sealed one after them (a torn
            // or lost tail, a blank last file) is truncated; a bad header, a name that is not the base offset, or a gap
            // after a sealed segment is refused wherever it is.
            corrupt = firstProblemRefused || sealedFlags.AsSpan(firstProblem).Contains(true);
            damagedTail = !corrupt;
        }

        corrupt |= pendingDamaged; // open refuses a damaged repair log
        damagedTail = !corrupt && (damagedTail || pending is { Dropped.Count: > 0 } || pending is { Removed.Count: > 0 });
        return new JournalVerifyReport(results, corrupt, damagedTail, pendingRepair);
    }

    /// <summary>
    /// Visits up to <paramref name="maxCount"/> records from <paramref name="fromOffset"/> or the first record at
    /// or after <paramref name="fromTimestamp"/> (Unix ms), checking CRCs; stops at the first damaged record
    /// and says so in <paramref name="problem"/>. Returns the number of records visited.
    /// </summary>
    public static long Dump(string directory, long? fromOffset, long? fromTimestamp, long maxCount, RecordVisitor visitor, out string? problem)
    {
        problem = null;
        var files = JournalRecovery.ListSegmentFiles(directory);
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
        }

        long visited = 0;
        for (var i = first; i < files.Length && visited < maxCount; i++)
        {
            var (baseOffset, path) = files[i];
            var segment = Segment.Open(path, writable: false, 4, out var error, out _);
            if (segment is null)
            {
                problem = $"{Path.GetFileName(path)}: bad segment header: {error ?? "blank"}";
                return visited;
            }

            try
            {
                var bytes = segment.ScanBytes;
                var isSealed = SegmentHeader.TryReadSeal(bytes, out _, out var sealedEnd, out var lastTimestamp) && sealedEnd <= segment.MappedLength;
                if (isSealed && fromTimestamp is { } ts && lastTimestamp < ts)
                {
                    continue;
                }

                var limit = Math.Min(isSealed ? sealedEnd : segment.MappedLength, bytes.Length);
                var position = SegmentHeader.Size;
                var count = 0;
                while (visited < maxCount)
                {
                    var status = RecordLayout.Check(bytes, position, limit, baseOffset + count, verifyCrc: true, out var length);
                    if (status == RecordStatus.End)
                    {
                        break;
                    }

                    if (status != RecordStatus.Ok)
                    {
                        problem = $"{Path.GetFileName(path)}: {RecordLayout.Describe(status)} at byte {position} (offset {baseOffset + count})";
                        return visited;
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
