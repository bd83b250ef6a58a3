namespace FastBroker.Journal.Internal;

/// <summary>
/// Offline tail truncation (<see cref="JournalLog.TruncateFrom(string, JournalOptions, long, string)"/>). First a
/// survey that changes nothing (so a damaged journal is refused untouched); then the segments past the cut are
/// deleted highest first, each deletion synced before the next, and only then is the new tail segment unsealed
/// and zeroed. A crash at any point leaves a contiguous journal: never a shortened segment followed by one that
/// starts later than it now ends.
/// </summary>
internal static class JournalTruncation
{
    private readonly record struct TailSurvey(int CutPosition, int ZeroEnd, long FirstOffset, long Records, long Bytes);

    internal static DroppedRange? Run(string directory, JournalOptions options, long offset, string reason)
    {
        // An open that crashed during its repair left the steps in its repair log, and the next open does them before it
        // looks at the files: do them first (each is idempotent), so that the survey neither refuses the damage they cut
        // nor counts records they drop. The log stays: the next open redoes nothing new and reports that repair. A
        // damaged log is refused (Corruption) before anything changes, as open refuses it.
        RepairLog.TryRead(directory, RepairLogUse.TruncateFrom)?.DoSteps(directory, null, null);
        var files = JournalRecovery.ListSegmentFiles(directory);
        if (files.Length == 0)
        {
            return null;
        }

        // The new tail: the last segment starting before the offset (it keeps the records below it), or the first
        // one when it starts exactly there (kept, emptied, so the journal still starts at the offset); -1 when
        // the offset is before the first segment.
        var tailIndex = -1;
        while (tailIndex + 1 < files.Length && files[tailIndex + 1].BaseOffset < offset)
        {
            tailIndex++;
        }

        if (tailIndex < 0 && files[0].BaseOffset == offset)
        {
            tailIndex = 0;
        }

        var removed = files[(tailIndex + 1)..];
        Segment? tail = null;
        try
        {
            long records = 0, bytes = 0, firstOffset = files[0].BaseOffset, firstPosition = SegmentHeader.Size;
            string? firstPath = null;
            TailSurvey survey = default;
            if (tailIndex >= 0)
            {
                tail = OpenTail(files[tailIndex].BaseOffset, files[tailIndex].Path, offset);
                survey = SurveyTail(tail, offset);
                if (survey.Records > 0)
                {
                    (firstPath, firstPosition, firstOffset) = (tail.FilePath, survey.CutPosition, survey.FirstOffset);
                    (records, bytes) = (survey.Records, survey.Bytes);
                }
            }

            foreach (var (baseOffset, path) in removed)
            {
                var (n, b) = CountRecords(path);
                if (n > 0 && firstPath is null)
                {
                    (firstPath, firstPosition, firstOffset) = (path, SegmentHeader.Size, baseOffset);
                }

                records += n;
                bytes += b;
            }

            if (records == 0 && tail is not null)
            {
                return null; // the journal already ends at or before the offset: leave every file as it is
            }

            for (var k = removed.Length - 1; k >= 0; k--)
            {
                var path = removed[k].Path;
                Segment.TryDelete(IndexFile.PathFor(path)); // index first: a stale one must never outlive its segment
                DeleteOrThrow(path);
                Native.SyncDirectory(directory); // durable before the next (lower) deletion or the cut
            }

            if (tail is not null)
            {
                Segment.TryDelete(IndexFile.PathFor(tail.FilePath)); // describes the old end; the next open rebuilds it
                tail.WritableBytes.Slice(64, 64).Clear(); // unseal first: a sealed segment with zeroed records is corrupt
                tail.Sync(0, SegmentHeader.Size);
                tail.ZeroAndSync(survey.CutPosition, survey.ZeroEnd);
            }
            else
            {
                var header = new SegmentHeader(options.Epoch, offset, options.SegmentSize, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                var created = Segment.Create(Path.Combine(directory, Segment.FileNameFor(offset)), header, 4);
                try
                {
                    created.Sync(0, SegmentHeader.Size);
                }
                finally
                {
                    created.ForceUnmap();
                }
            }

            Native.SyncDirectory(directory);
            return new DroppedRange(firstPath ?? files[0].Path, firstPosition, firstPosition + bytes, firstOffset, (int)Math.Min(records, int.MaxValue), reason);
        }
        finally
        {
            tail?.ForceUnmap();
        }
    }

    private static Segment OpenTail(long nameOffset, string path, long offset)
    {
        var segment = Segment.Open(path, writable: true, 4, out var error, out var unsupported);
        if (segment is null)
        {
            throw unsupported
                ? new JournalException(JournalErrorCode.UnsupportedFormat, $"'{path}' is not a segment this version can read: {error}.")
                : new JournalCorruptionException(path, 0, offset, error ?? "blank segment header");
        }

        if (segment.BaseOffset != nameOffset)
        {
            segment.ForceUnmap();
            throw new JournalCorruptionException(path, 24, offset, $"header base offset {segment.BaseOffset} does not match the file name");
        }

        return segment;
    }

    /// <summary>Finds the record at <paramref name="offset"/> in the tail segment and counts what follows it.</summary>
    private static TailSurvey SurveyTail(Segment tail, long offset)
    {
        var bytes = tail.ScanBytes;
        var isSealed = SegmentHeader.TryReadSeal(bytes, out _, out var sealedEnd, out _) && sealedEnd <= tail.MappedLength;
        var limit = Math.Min(isSealed ? sealedEnd : tail.MappedLength, bytes.Length);
        var target = offset - tail.BaseOffset;
        var position = SegmentHeader.Size;
        var count = 0;
        var status = RecordStatus.Ok;
        while (count < target)
        {
            status = RecordLayout.Check(bytes, position, limit, tail.BaseOffset + count, verifyCrc: true, out var length);
            if (status != RecordStatus.Ok)
            {
                break; // the data ends (or, unsealed, is torn) before the offset: cut there, as recovery would
            }

            position += RecordLayout.Align(length);
            count++;
        }

        if (isSealed && count < target && position < sealedEnd)
        {
            var why = status == RecordStatus.End ? $"sealed segment ends early (record {count})" : RecordLayout.Describe(status);
            throw new JournalCorruptionException(tail.FilePath, position, tail.BaseOffset + count, why);
        }

        var rest = SegmentScanner.Scan(bytes, position, limit, tail.BaseOffset, count, verifyCrc: true, null, int.MaxValue);
        return new TailSurvey(position, SegmentScanner.EndOfNonZero(bytes, position), tail.BaseOffset + count, rest.RecordCount - count, rest.EndPosition - position);
    }

    /// <summary>Valid records (and their bytes) in a segment about to be deleted, for the report.</summary>
    private static (long Records, long Bytes) CountRecords(string path)
    {
        var segment = Segment.Open(path, writable: false, 4, out _, out _);
        if (segment is null)
        {
            return (0, 0);
        }

        try
        {
            var bytes = segment.ScanBytes;
            var limit = Math.Min(SegmentHeader.TryReadSeal(bytes, out _, out var sealedEnd, out _) && sealedEnd <= segment.MappedLength ? sealedEnd : segment.MappedLength, bytes.Length);
            var scan = SegmentScanner.Scan(bytes, SegmentHeader.Size, limit, segment.BaseOffset, 0, verifyCrc: true, null, int.MaxValue);
            return (scan.RecordCount, scan.EndPosition - SegmentHeader.Size);
        }
        finally
        {
            segment.ForceUnmap();
        }
    }

    private static void DeleteOrThrow(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Stop here: cutting the tail with a later segment still present would leave a gap.
            throw new JournalException(JournalErrorCode.IoError, $"Truncation cannot delete '{path}': {e.Message}. Nothing below it was changed; run it again.", e);
        }
    }
}
