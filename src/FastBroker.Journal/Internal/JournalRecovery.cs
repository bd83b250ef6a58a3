using System.Buffers.Binary;
using System.Globalization;

namespace FastBroker.Journal.Internal;

/// <summary>
/// Opens every segment of a journal directory and decides what survives (docs/journal-format.md, "Recovery"):
/// sealed segments must be intact (else <see cref="JournalCorruptionException"/>, or truncation with
/// <see cref="JournalOptions.RepairCorruption"/>); the unsealed tail is scanned record by record and cut at
/// the first bad one, with everything dropped reported. The scan changes nothing: what it decides to delete and cut is
/// written to the <see cref="RepairLog"/> first, and done after, so that a crash part-way loses neither the report nor
/// the rest of the repair (the next open finishes and reports it).
/// </summary>
internal sealed class JournalRecovery
{
    private readonly string _directory;
    private readonly JournalOptions _options;
    private readonly int _indexCapacity;
    private readonly RecoveryReport _report = new();
    private readonly List<Segment> _segments = [];
    private readonly List<string> _deletions = []; // files the repair deletes, once its log is durable
    private (long BaseOffset, string Path)[] _files = [];
    private long _removedFrom = -1;
    private Segment? _cutSegment; // the segment the repair cuts (and unseals), at _cutPosition up to _cutEnd
    private int _cutPosition;
    private int _cutEnd;

    private JournalRecovery(string directory, JournalOptions options, int indexCapacity)
    {
        _directory = directory;
        _options = options;
        _indexCapacity = indexCapacity;
    }

    /// <summary>
    /// Recovers the directory. <c>RemovedFrom</c> is the base offset of the first segment file removed (-1: none): when
    /// no segment is left, the journal continues there, never below offsets it already gave.
    /// </summary>
    internal static (List<Segment> Segments, RecoveryReport Report, long RemovedFrom) Run(string directory, JournalOptions options, int indexCapacity)
    {
        var recovery = new JournalRecovery(directory, options, indexCapacity);
        try
        {
            recovery.RunCore();
        }
        catch
        {
            foreach (var s in recovery._segments)
            {
                s.ForceUnmap();
            }

            throw;
        }

        return (recovery._segments, recovery._report, recovery._removedFrom);
    }

    internal static (long BaseOffset, string Path)[] ListSegmentFiles(string directory)
    {
        var list = new List<(long, string)>();
        foreach (var path in Directory.EnumerateFiles(directory, "*.seg"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name.Length == 20 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var baseOffset))
            {
                list.Add((baseOffset, path));
            }
        }

        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return [.. list];
    }

    /// <summary>
    /// Deletes the index files of segments that are gone: every path that deletes a segment unlinks its index first,
    /// except that a crash between retention's two unlinks (or an operator's removal of a segment) leaves the index
    /// alone, and nothing reads it or would ever remove it. Only names of the journal's own form are touched.
    /// </summary>
    private void RemoveOrphanIndexFiles()
    {
        foreach (var path in Directory.EnumerateFiles(_directory, "*.idx"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name.Length == 20 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out _)
                && !File.Exists(Path.ChangeExtension(path, ".seg")))
            {
                Segment.TryDelete(path);
            }
        }
    }

    private void RunCore()
    {
        foreach (var temp in Directory.EnumerateFiles(_directory, "*.tmp").Concat(Directory.EnumerateFiles(_directory, "*.prep")))
        {
            Segment.TryDelete(temp); // half-written index files, spare segments never adopted
        }

        FinishInterruptedRepair();
        _files = ListSegmentFiles(_directory);
        RemoveOrphanIndexFiles();
        _report.SegmentCount = _files.Length;
        Scan();
        if (_deletions.Count > 0 || _cutSegment is not null)
        {
            // Durable before anything is destroyed: the whole report so far (an interrupted repair's entries included)
            // and the steps, which a crash leaves for the next open to finish.
            var log = new RepairLog { Cut = _cutSegment is null ? null : (_cutSegment.FilePath, _cutPosition, _cutEnd) };
            log.Dropped.AddRange(_report.Dropped);
            log.Removed.AddRange(_report.RemovedFiles);
            log.Deletions.AddRange(_deletions);
            log.Write(_directory);
            log.DoSteps(_directory, _cutSegment, _options.RepairStepHook);
        }
    }

    /// <summary>
    /// An open that crashed (or failed) after writing its repair log: finish its steps and report its entries, before
    /// the scan, which then finds the journal as that repair left it.
    /// </summary>
    private void FinishInterruptedRepair()
    {
        if (RepairLog.TryRead(_directory, RepairLogUse.Open) is not { } interrupted)
        {
            return;
        }

        interrupted.DoSteps(_directory, null, null);
        _report.FinishedInterruptedRepair = true;
        foreach (var d in interrupted.Dropped)
        {
            _report.AddDropped(d);
        }

        foreach (var path in interrupted.Removed)
        {
            _report.AddRemovedFile(path);
            if (long.TryParse(Path.GetFileNameWithoutExtension(path), NumberStyles.None, CultureInfo.InvariantCulture, out var baseOffset))
            {
                _removedFrom = _removedFrom < 0 ? baseOffset : Math.Min(_removedFrom, baseOffset);
            }
        }
    }

    private void Scan()
    {
        long expectedNext = -1;
        var previousUnsealed = false;
        for (var i = 0; i < _files.Length; i++)
        {
            var (nameOffset, path) = _files[i];
            var isLast = i == _files.Length - 1;
            var segment = Segment.Open(path, writable: true, _indexCapacity, out var error, out var unsupported);
            if (segment is null)
            {
                if (unsupported)
                {
                    throw new JournalException(JournalErrorCode.UnsupportedFormat, $"'{path}' is not a segment this version can read: {error}.");
                }

                if (error is null && isLast)
                {
                    // Created but its header never reached the disk: an interrupted roll, no record in it.
                    RemoveFile(path);
                    _removedFrom = _removedFrom < 0 ? nameOffset : _removedFrom;
                    continue;
                }

                if (IsUnsyncedBlank(path) && !AnySealedFrom(i + 1) && (expectedNext < 0 || nameOffset == expectedNext || previousUnsealed))
                {
                    // Its header page never reached the disk, so nothing in it or after it was ever synced: a lost tail
                    // (a power loss before the flusher first synced or sealed it), not damage to durable data.
                    RemoveFrom(i, "blank segment header: never synced (lost tail)");
                    return;
                }

                if (!Corrupt(i, path, 0, expectedNext, error ?? "blank segment header"))
                {
                    return;
                }

                continue;
            }

            if (segment.BaseOffset != nameOffset)
            {
                segment.ForceUnmap();
                if (!Corrupt(i, path, 24, expectedNext, $"header base offset {segment.BaseOffset} does not match the file name"))
                {
                    return;
                }

                continue;
            }

            if (expectedNext >= 0 && segment.BaseOffset != expectedNext)
            {
                segment.ForceUnmap();
                var reason = $"segment starts at offset {nameOffset} but the previous one ends at {expectedNext}";
                if (previousUnsealed && !AnySealedFrom(i))
                {
                    // The previous (unsealed) segment lost its tail: nothing here was ever acknowledged.
                    RemoveFrom(i, reason + " (lost tail)");
                    return;
                }

                if (!Corrupt(i, path, 0, expectedNext, reason))
                {
                    return;
                }

                continue;
            }

            _segments.Add(segment);
            var bytes = segment.ScanBytes;
            if (SegmentHeader.TryReadSeal(bytes, out var sealedCount, out var sealedEnd, out var sealedLastTimestamp) && sealedEnd <= segment.Size)
            {
                if (!RecoverSealed(i, segment, sealedCount, sealedEnd, sealedLastTimestamp))
                {
                    return;
                }

                expectedNext = segment.BaseOffset + sealedCount;
                previousUnsealed = false;
                continue;
            }

            var scan = SegmentScanner.Scan(bytes, SegmentHeader.Size, bytes.Length, segment.BaseOffset, 0, verifyCrc: true, segment.Index, _options.IndexIntervalBytes);
            _report.SegmentsVerified++;
            var garbageEnd = SegmentScanner.EndOfNonZero(bytes, scan.EndPosition);
            if (scan.Stop != RecordStatus.End || garbageEnd > scan.EndPosition)
            {
                var why = scan.Stop == RecordStatus.End ? "non-zero bytes after the last record" : "torn tail: " + RecordLayout.Describe(scan.Stop);
                if (AnySealedFrom(i + 1))
                {
                    // Damage followed by sealed data is not a torn write.
                    _segments.RemoveAt(_segments.Count - 1);
                    segment.ForceUnmap();
                    if (!Corrupt(i, path, scan.EndPosition, segment.BaseOffset + scan.RecordCount, RecordLayout.Describe(scan.Stop)))
                    {
                        return;
                    }

                    continue;
                }

                _report.AddDropped(new DroppedRange(path, scan.EndPosition, garbageEnd, segment.BaseOffset + scan.RecordCount, SegmentScanner.CountDropped(bytes, scan.EndPosition, garbageEnd, segment.BaseOffset + scan.RecordCount), why));
                (_cutSegment, _cutPosition, _cutEnd) = (segment, scan.EndPosition, garbageEnd);
                segment.SetRecovered(Segment.Pack(scan.RecordCount, scan.EndPosition), scan.LastTimestamp, isSealed: false, verified: true);
                RemoveFrom(i + 1, "after the torn tail of " + Path.GetFileName(path));
                return;
            }

            segment.SetRecovered(Segment.Pack(scan.RecordCount, scan.EndPosition), scan.LastTimestamp, isSealed: false, verified: true);
            expectedNext = segment.BaseOffset + scan.RecordCount;
            previousUnsealed = true;
        }
    }

    private bool RecoverSealed(int i, Segment segment, int sealedCount, int sealedEnd, long sealedLastTimestamp)
    {
        // A seal an older version wrote may understate the newest record (it took the last one's, docs/journal-format.md):
        // a scan of the segment corrects it in memory (retention by age, a start at a time), the seal stays as it is. The
        // verifying open scans every sealed segment; the trusting one those whose seal lacks SealFlagNewestTimestamp.
        var bytes = segment.ScanBytes;
        var limit = Math.Min(sealedEnd, bytes.Length);
        if (_options.VerifySealedSegmentsOnOpen)
        {
            var scan = SegmentScanner.Scan(bytes, SegmentHeader.Size, limit, segment.BaseOffset, 0, verifyCrc: true, segment.Index, _options.IndexIntervalBytes);
            _report.SegmentsVerified++;
            if (scan.RecordCount != sealedCount || scan.EndPosition != sealedEnd)
            {
                var reason = scan.Stop == RecordStatus.End ? $"sealed segment ends early (record {scan.RecordCount} of {sealedCount})" : RecordLayout.Describe(scan.Stop);
                return CorruptInSegment(i, segment, scan.EndPosition, segment.BaseOffset + scan.RecordCount, reason, scan, verified: true);
            }

            sealedLastTimestamp = Math.Max(sealedLastTimestamp, scan.LastTimestamp);

            var indexPath = IndexFile.PathFor(segment.FilePath);
            if (IndexFile.TryRead(indexPath, segment.BaseOffset, sealedEnd, sealedCount) is null)
            {
                _report.IndexesRebuilt++;
                TryWriteIndex(segment, sealedEnd);
            }
        }
        else
        {
            var entries = IndexFile.TryRead(IndexFile.PathFor(segment.FilePath), segment.BaseOffset, sealedEnd, sealedCount);
            if (entries is not null && SegmentHeader.SealBoundsNewest(bytes))
            {
                segment.Index = new SparseIndex(entries);
            }
            else
            {
                // No usable index file, or a seal an older version wrote, whose last timestamp (and its index file's
                // entries) may understate the newest record: trusted as to its records (no CRC32C), not its timestamps.
                // The scan's index and newest stamp are kept in memory; the files stay as they are.
                var scan = SegmentScanner.Scan(bytes, SegmentHeader.Size, limit, segment.BaseOffset, 0, verifyCrc: false, segment.Index, _options.IndexIntervalBytes);
                if (entries is null)
                {
                    _report.IndexesRebuilt++;
                }
                else
                {
                    _report.OlderSealsScanned++;
                }

                if (scan.RecordCount != sealedCount || scan.EndPosition != sealedEnd)
                {
                    return CorruptInSegment(i, segment, scan.EndPosition, segment.BaseOffset + scan.RecordCount, RecordLayout.Describe(scan.Stop), scan, verified: false);
                }

                sealedLastTimestamp = Math.Max(sealedLastTimestamp, scan.LastTimestamp);
                if (entries is null)
                {
                    TryWriteIndex(segment, sealedEnd);
                }
            }
        }

        // Verified: its whole written part is known good to readers; trusted: its first reader checks each record once.
        segment.SetRecovered(Segment.Pack(sealedCount, sealedEnd), sealedLastTimestamp, isSealed: true, verified: _options.VerifySealedSegmentsOnOpen);
        return true;
    }

    /// <summary>
    /// Corruption inside an opened segment: throw, or (repair) cut the segment there and drop what follows.
    /// <paramref name="verified"/>: the scan that found it checked the CRC32C of the records before it.
    /// </summary>
    private bool CorruptInSegment(int i, Segment segment, int position, long expectedOffset, string reason, SegmentScanner.Result scan, bool verified)
    {
        if (!_options.RepairCorruption)
        {
            throw new JournalCorruptionException(segment.FilePath, position, expectedOffset, reason);
        }

        // The steps run in TruncateFrom's order (RepairLog.DoSteps): the later files first (durably), then unseal, then
        // zero. Zeroed records under a seal would be corruption; an unsealed last segment with the damage still in it
        // is a torn tail, dropped and reported by any open, and the repair log makes the next open finish the job.
        var bytes = segment.ScanBytes;
        var end = SegmentScanner.EndOfNonZero(bytes, position);
        _report.AddDropped(new DroppedRange(segment.FilePath, position, end, expectedOffset, SegmentScanner.CountDropped(bytes, position, end, expectedOffset), "repaired: " + reason));
        RemoveFrom(i + 1, "after repaired corruption in " + Path.GetFileName(segment.FilePath));
        (_cutSegment, _cutPosition, _cutEnd) = (segment, position, end);
        segment.SetRecovered(Segment.Pack(scan.RecordCount, position), scan.LastTimestamp, isSealed: false, verified);
        return false;
    }

    /// <summary>Corruption before a segment could be used (header, gap): throw, or (repair) drop it and every later file.</summary>
    private bool Corrupt(int i, string path, long position, long expectedOffset, string reason)
    {
        if (!_options.RepairCorruption)
        {
            throw new JournalCorruptionException(path, position, expectedOffset, reason);
        }

        RemoveFrom(i, "repaired: " + reason);
        return false;
    }

    private void RemoveFrom(int first, string reason)
    {
        if (first < _files.Length && _removedFrom < 0)
        {
            _removedFrom = _files[first].BaseOffset;
        }

        for (var k = first; k < _files.Length; k++)
        {
            var (baseOffset, path) = _files[k];
            long length = 0;
            var records = 0;
            try
            {
                length = new FileInfo(path).Length;
                var segment = Segment.Open(path, writable: false, 4, out _, out _);
                if (segment is not null)
                {
                    var bytes = segment.ScanBytes;
                    records = SegmentScanner.Scan(bytes, SegmentHeader.Size, bytes.Length, segment.BaseOffset, 0, verifyCrc: true, null, int.MaxValue).RecordCount;
                    segment.ForceUnmap();
                }
                else if (HasBlankIdentity(path))
                {
                    // Only the header is lost: the records after it (their offsets follow from the name) still count.
                    records = Segment.ScanWithoutHeader(path, baseOffset).RecordCount;
                }
            }
            catch (IOException)
            {
            }

            _report.AddDropped(new DroppedRange(path, 0, length, baseOffset, records, reason));
            RemoveFile(path);
        }

        _files = _files[..Math.Min(first, _files.Length)];
    }

    /// <summary>Reports the file removed; the repair deletes it once its log is durable.</summary>
    private void RemoveFile(string path)
    {
        _report.AddRemovedFile(path);
        _deletions.Add(path);
    }

    /// <summary>
    /// The identity block is all zeros and there is no seal trailer: nothing shows that the header ever reached the
    /// disk. It is stamped through the mapping at creation and synced with the segment's first records (a segment's
    /// first msync starts at byte 0), before any later segment's records (the flusher syncs in offset order) and
    /// before its own seal; so a blank header with a seal trailer, or followed by a sealed segment, was once on
    /// the disk and is damage. Without either, a power loss before that first sync leaves exactly this, with
    /// whatever pages the kernel wrote back on its own (records of it, and of the segments after it).
    /// </summary>
    internal static bool IsUnsyncedBlank(string path)
    {
        Span<byte> header = stackalloc byte[SegmentHeader.Size];
        ReadHeader(path, header);
        return SegmentHeader.IsBlankIdentity(header) && !SegmentHeader.TryReadSeal(header, out _, out _, out _);
    }

    internal static bool HasBlankIdentity(string path)
    {
        Span<byte> header = stackalloc byte[SegmentHeader.Size];
        ReadHeader(path, header);
        return SegmentHeader.IsBlankIdentity(header);
    }

    private static void ReadHeader(string path, Span<byte> header)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        header.Clear();
        _ = RandomAccess.Read(handle, header, 0);
    }

    private bool AnySealedFrom(int first)
    {
        for (var k = first; k < _files.Length; k++)
        {
            if (HasMagicAndSeal(_files[k].Path))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The file has the segment magic and a valid seal trailer: a sealed segment after damage, which makes that damage
    /// corruption rather than a torn or lost tail (verify asks the same of each file).
    /// </summary>
    internal static bool HasMagicAndSeal(string path)
    {
        Span<byte> header = stackalloc byte[SegmentHeader.Size];
        ReadHeader(path, header);
        return BinaryPrimitives.ReadUInt64LittleEndian(header) == SegmentHeader.Magic && SegmentHeader.TryReadSeal(header, out _, out _, out _);
    }

    private static void TryWriteIndex(Segment segment, int endPosition)
    {
        try
        {
            IndexFile.Write(IndexFile.PathFor(segment.FilePath), segment.BaseOffset, endPosition, segment.Index.Snapshot());
        }
        catch (IOException)
        {
            // Best effort: the index is rebuilt on the next open.
        }
    }
}
