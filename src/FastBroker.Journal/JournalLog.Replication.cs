using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using FastBroker.Journal.Internal;

namespace FastBroker.Journal;

/// <summary>Hot-standby replication: appending records copied verbatim from a primary, and offline tail truncation.</summary>
public sealed unsafe partial class JournalLog
{
    /// <summary>The reason <see cref="TruncateFrom(string, JournalOptions, long)"/> reports.</summary>
    public const string TruncatedNotOnNewPrimary = "truncated: not on the new primary";

    /// <summary>Test seam: called by <see cref="TryAppendRecords"/> when a record needs room (a new limit or segment).</summary>
    internal Action? ReplicationRoomHook;

    /// <summary>
    /// Appends whole records in journal format, exactly as a primary's <see cref="JournalRun.Bytes"/> holds them
    /// (8-byte aligned, padding included, one or more records), copying each verbatim: same offset, timestamp,
    /// flags and CRC32C, so the standby's journal is byte-identical to the primary's. Writer thread only; never
    /// allocates.
    /// </summary>
    /// <param name="records">Whole records, consecutive offsets, starting at <paramref name="firstOffset"/>.</param>
    /// <param name="firstOffset">Offset of the first record: must equal <see cref="NextOffset"/>.</param>
    /// <param name="appended">Records of <paramref name="records"/> appended by this call (also when it throws).</param>
    /// <returns>
    /// True when every record was appended; false for back-pressure (too many bytes not yet durable, as with
    /// <see cref="TryAppend(ReadOnlySpan{byte}, out long)"/>): the first <paramref name="appended"/> records were
    /// appended; <see cref="Commit"/>, wait for <see cref="DurableOffset"/> to move, and send the rest again.
    /// </returns>
    /// <remarks>
    /// <para>Each record is checked before a byte of it is written: its length is sane and within the span (padding
    /// included), its stored offset is the next one, and its CRC32C matches. Timestamps are not restamped, so a
    /// record may be older than one before it: the segment's last timestamp (its seal, retention by age) is the newest
    /// of them, and its sparse index entries carry the newest up to their record, so a start at a time
    /// (<see cref="ReadStart.FromTimestamp"/>) is still the first record in log order at or after it.</para>
    /// <para>A record that does not fit in the active segment rolls to a new one exactly as
    /// <see cref="TryAppend(ReadOnlySpan{byte}, out long)"/> would, so with the same
    /// <see cref="JournalOptions.SegmentSize"/> the standby's segment files start at the same offsets as a primary
    /// that appended record by record. (A primary appending with <see cref="TryBeginBatch"/> rolls when the whole
    /// reservation does not fit, possibly before the record that no longer fits: its segments may then end
    /// earlier than the standby's. Offsets and record bytes are identical either way.)</para>
    /// <para>Records become visible to readers and durable at <see cref="Commit"/>, like normal appends.</para>
    /// </remarks>
    /// <exception cref="JournalException"><paramref name="firstOffset"/> is not <see cref="NextOffset"/>
    /// (<see cref="JournalErrorCode.OffsetMismatch"/>; nothing written), or a record is larger than this journal's
    /// segments hold (<see cref="JournalErrorCode.RecordTooLarge"/>), or the journal is faulted
    /// (<see cref="JournalErrorCode.Faulted"/>, also when the fault comes during the call: nothing of the record after
    /// it is written, the records before were).</exception>
    /// <exception cref="JournalCorruptionException">A record fails a check: the message names its offset, byte
    /// position in <paramref name="records"/> and the reason; nothing of it was written, the records before it were.</exception>
    /// <exception cref="JournalFullException">A new segment was needed and the disk is full; nothing of that record was written.</exception>
    public bool TryAppendRecords(ReadOnlySpan<byte> records, long firstOffset, out int appended)
    {
        appended = 0;
        ThrowIfUnusable();
        if (firstOffset != _nextOffset)
        {
            ThrowHelper.ThrowOffsetMismatch(firstOffset, _nextOffset);
        }

        var count = 0;
        var position = 0;
        var unpublished = false;
        try
        {
            while (position < records.Length)
            {
                var status = RecordLayout.Check(records, position, records.Length, _nextOffset, verifyCrc: true, out var length);
                var stored = RecordLayout.Align(length);
                if (status != RecordStatus.Ok || stored > records.Length - position)
                {
                    appended = count;
                    ThrowBadRecord(records, position, status, count);
                }

                if (stored > MaxStoredRecordSize)
                {
                    ThrowHelper.ThrowReplicatedRecordTooLarge(_nextOffset, stored, MaxStoredRecordSize);
                }

                var full = _active is null || _writePos + stored > _writeLimit;
                var pushBack = _appendedBytes - Volatile.Read(ref _durableBytes) > _maxUndurableBytes;
                if ((full || pushBack) && unpublished)
                {
                    // Before the flusher is woken (it syncs what is published) or sees the segment closed (its
                    // published word must then be final).
                    PublishAppends();
                    unpublished = false;
                }

                if (pushBack)
                {
                    RequestFlush();
                    return false;
                }

                if (full)
                {
                    // A fault zeroes the write limit, so every record after it comes here: refused, not written (the
                    // check at the top of the call alone let the rest of a run in, acknowledged as received).
                    ReplicationRoomHook?.Invoke();
                    ThrowIfUnusable();
                    EnsureRoom(stored); // throws JournalFullException with nothing of this record written
                }

                CopyRecord(records.Slice(position, length), stored);
                unpublished = true;
                position += stored;
                appended = ++count;
            }

            return true;
        }
        finally
        {
            if (unpublished)
            {
                PublishAppends();
            }
        }
    }

    /// <summary>
    /// Removes every record at or after <paramref name="offset"/> from the journal in <paramref name="directory"/>
    /// (a former primary rejoining as a standby drops what the new primary never received). Offline: takes the
    /// directory lock like <see cref="Open"/> (so it fails while the journal is open) and releases it.
    /// </summary>
    /// <returns>Null when the journal already ends at or before <paramref name="offset"/> (nothing changed);
    /// else what was removed, with reason <see cref="TruncatedNotOnNewPrimary"/>.</returns>
    /// <inheritdoc cref="TruncateFrom(string, JournalOptions, long, string)"/>
    public static DroppedRange? TruncateFrom(string directory, JournalOptions options, long offset) =>
        TruncateFrom(directory, options, offset, TruncatedNotOnNewPrimary);

    /// <summary>
    /// Removes every record at or after <paramref name="offset"/> from the journal in <paramref name="directory"/>,
    /// reporting <paramref name="reason"/>. Offline: takes the directory lock like <see cref="Open"/> (so it fails
    /// while the journal is open) and releases it.
    /// </summary>
    /// <param name="directory">The journal directory.</param>
    /// <param name="options">The journal's options (<see cref="JournalOptions.SegmentSize"/> and
    /// <see cref="JournalOptions.Epoch"/> are used if a new, empty segment has to be created).</param>
    /// <param name="offset">The first offset to remove; the next <see cref="Open"/> has <see cref="NextOffset"/> equal to it.</param>
    /// <param name="reason">Why, for <see cref="DroppedRange.Reason"/>.</param>
    /// <returns>Null when the journal already ends at or before <paramref name="offset"/> (nothing changed); else
    /// what was removed: <see cref="DroppedRange.FirstOffset"/> is the first removed record's offset,
    /// <see cref="DroppedRange.RecordCount"/> the records removed, <see cref="DroppedRange.FilePath"/> and
    /// <see cref="DroppedRange.StartPosition"/> where the first removed record was, and
    /// <see cref="DroppedRange.Length"/> the bytes of all removed records (across files).</returns>
    /// <remarks>
    /// <para>Segment files (and their index files) starting at or after <paramref name="offset"/> are deleted,
    /// highest first, each deletion made durable before the next, so a crash part-way leaves a contiguous,
    /// shorter-but-not-yet-short-enough journal (never a gap); run it again. The segment holding the record before
    /// <paramref name="offset"/> becomes the writable tail: its seal is removed, its bytes from that record's
    /// position to the end of the written data are zeroed and synced, and its index file is deleted (the next open
    /// rebuilds it). So the next record goes into that segment if it fits, as it does on a primary whose journal
    /// ends at <paramref name="offset"/>, and replicated segment files keep lining up.</para>
    /// <para>When <paramref name="offset"/> is at or before the first retained offset, the journal is left with one
    /// empty segment starting at <paramref name="offset"/>. Saved reader positions past <paramref name="offset"/>
    /// are moved back to it (the records they had read no longer exist).</para>
    /// <para>A repair that an open left unfinished (its <c>repair.log</c>, docs/journal-format.md "Recovery") is finished
    /// first, as the next open would, and its log left for that open to report: the truncation works on the journal as
    /// the repair leaves it, so it does not refuse the damage the repair cuts nor report the records it drops.</para>
    /// </remarks>
    /// <exception cref="JournalException">The journal is open (the directory lock is held), a file cannot be deleted, or
    /// the directory's repair log is damaged (<see cref="JournalErrorCode.Corruption"/>; nothing was changed).</exception>
    /// <exception cref="JournalCorruptionException">The sealed segment holding <paramref name="offset"/> is damaged
    /// before it; nothing was changed.</exception>
    /// <exception cref="JournalFullException">An empty segment had to be created and the disk is full.</exception>
    /// <exception cref="PlatformNotSupportedException">Not Linux on a little-endian CPU.</exception>
    public static DroppedRange? TruncateFrom(string directory, JournalOptions options, long offset, string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(reason);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        options.Validate();
        ThrowIfUnsupportedPlatform();
        directory = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            return null;
        }

        using var lockFile = AcquireDirectoryLock(directory);
        var dropped = JournalTruncation.Run(directory, options, offset, reason);
        if (dropped is not null)
        {
            ClampReaderPositions(Path.Combine(directory, ReadersDirectoryName), offset);
        }

        return dropped;
    }

    /// <summary>Copies one checked record into the active segment (it fits): the replication twin of WriteRecord.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CopyRecord(ReadOnlySpan<byte> record, int stored)
    {
        var position = _writePos;
        var p = _writeBase + position;
        *(ulong*)(p + stored - 8) = 0; // padding: zero on the primary, and the page may hold bytes of a dropped record
        record.CopyTo(new Span<byte>(p, record.Length));
        // Not restamped, so possibly older than a record before it: the segment's newest goes into the index entry (a
        // search by time stays a binary search) and the journal's into the seal (it bounds every record of the segment).
        var timestamp = *(long*)(p + RecordLayout.TimestampOffset);
        var newest = Math.Max(_segmentNewest, timestamp);
        if (position >= _nextIndexPos)
        {
            _active!.Index.Add(_writeCount, position, newest);
            _nextIndexPos = position + _options.IndexIntervalBytes;
        }

        _writePos = position + stored;
        _writeCount++;
        _nextOffset++;
        _segmentNewest = newest;
        _lastTimestamp = Math.Max(_lastTimestamp, timestamp);
        _appendedBytes += stored;
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowBadRecord(ReadOnlySpan<byte> records, int position, RecordStatus status, int appended)
    {
        var left = records.Length - position;
        var reason = status switch
        {
            _ when left < RecordLayout.HeaderSize => $"truncated record ({left} byte(s) left, a record header is {RecordLayout.HeaderSize})",
            RecordStatus.End => "record length is zero",
            RecordStatus.BadOffset => $"record offset {Unsafe.ReadUnaligned<long>(ref Unsafe.AsRef(in records[position + RecordLayout.OffsetOffset]))} out of sequence",
            RecordStatus.Ok => $"record padding missing ({left} byte(s) left, the record takes {RecordLayout.Align(Unsafe.ReadUnaligned<int>(ref Unsafe.AsRef(in records[position])))})",
            _ => RecordLayout.Describe(status) + $" (length word {Unsafe.ReadUnaligned<uint>(ref Unsafe.AsRef(in records[position]))}, {left} byte(s) left)",
        };
        ThrowHelper.ThrowBadReplicatedRecord(position, _nextOffset, reason, appended);
    }

    private static void ClampReaderPositions(string readersDirectory, long offset)
    {
        if (!System.IO.Directory.Exists(readersDirectory))
        {
            return;
        }

        foreach (var path in System.IO.Directory.EnumerateFiles(readersDirectory, "*.pos"))
        {
            if (TryReadPositionFile(path, out var saved) && saved > offset)
            {
                WritePositionFile(path, offset);
            }
        }
    }
}
