using System.Text;

namespace FastBroker.Engine;

/// <summary>
/// Committed positions of one durable subscription, per topic (a pattern subscription spans several topics).
/// A memory-mapped table: a commit is one aligned 8-byte store (survives <c>kill -9</c> without a syscall); adding
/// a topic writes its name first and publishes the entry by storing its position last. Opened with a
/// <see cref="StateFileFlusher"/>, <see cref="RequestSync"/> (after a commit to an <c>Fsynced</c> topic) has it msynced in
/// the background.
/// </summary>
/// <remarks>Layout: slot 0 magic, slot 1 entry count; then entries of 264 bytes: u8 name length, name (UTF-8,
/// ≤ 255 bytes, zero-padded to 256), i64 position + 1 (0 = entry not yet published).</remarks>
internal sealed class PositionStore : IDisposable
{
    /// <summary>Topics one durable subscription can span.</summary>
    public const int MaxTopics = 1024;

    private const long Magic = 0x534F_5052_4246_4246; // "FBFRPROS"
    private const int HeaderBytes = 16;
    private const int EntryBytes = 264;

    private readonly object _gate = new();
    private readonly MappedStateFile _file;
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

    private PositionStore(MappedStateFile file)
    {
        _file = file;
        var count = (int)Math.Min(_file.Read(1), MaxTopics);
        for (var i = 0; i < count; i++)
        {
            var entry = HeaderBytes + ((long)i * EntryBytes);
            var len = _file.Bytes(entry, 1)[0];
            if (len == 0 || _file.Read((entry + 256) / 8) == 0)
            {
                continue;
            }

            _index[Encoding.UTF8.GetString(_file.Bytes(entry + 1, len))] = i;
        }
    }

    /// <summary>
    /// True when the file existed but held no state (empty, or no magic: its first 8 bytes zero): its committed positions
    /// were lost (a power loss before the file's data reached the disk, say), or its creation was interrupted before the
    /// header was stored. It opens with no position; the caller must not take that as a new subscription's (whose
    /// fallback, <see cref="StartKind.Latest"/> say, would skip every message it had not committed).
    /// </summary>
    public bool WasBlank { get; private init; }

    /// <summary>Opens or creates the position file at <paramref name="path"/>; <paramref name="flusher"/>: who syncs it (null: never synced).</summary>
    public static PositionStore Open(string path, StateFileFlusher? flusher = null)
    {
        var file = MappedStateFile.Open(path, HeaderBytes + ((long)MaxTopics * EntryBytes), flusher);
        var blank = !file.Created && file.Read(0) == 0;
        if (file.Created || blank)
        {
            file.Write(0, Magic);
        }
        else if (file.Read(0) != Magic)
        {
            file.Dispose();
            throw new InvalidDataException($"{path} is not a FastBroker position file");
        }

        return new PositionStore(file) { WasBlank = blank };
    }

    /// <summary>
    /// True when the file at <paramref name="path"/> exists but holds no state (what <see cref="Open"/> takes as
    /// <see cref="WasBlank"/>), read without mapping or changing it. False when missing, unreadable or holding anything.
    /// </summary>
    public static bool HoldsNoState(string path) => GroupAckStore.HoldsNoState(path);

    /// <summary>The committed next offset to read for <paramref name="topic"/>, or null when never committed.</summary>
    public long? Get(string topic)
    {
        lock (_gate)
        {
            if (!_index.TryGetValue(topic, out var i))
            {
                return null;
            }

            return _file.Read(SlotOf(i)) - 1;
        }
    }

    /// <summary>Every topic with a committed position.</summary>
    public IReadOnlyDictionary<string, long> All()
    {
        lock (_gate)
        {
            var result = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var (topic, i) in _index)
            {
                result[topic] = _file.Read(SlotOf(i)) - 1;
            }

            return result;
        }
    }

    /// <summary>Commits <paramref name="nextOffset"/> (the first offset not yet processed) for <paramref name="topic"/>.</summary>
    public void Commit(string topic, long nextOffset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nextOffset);
        lock (_gate)
        {
            if (_index.TryGetValue(topic, out var i))
            {
                _file.Write(SlotOf(i), nextOffset + 1);
                return;
            }

            var count = (int)_file.Read(1);
            if (count >= MaxTopics)
            {
                throw new BrokerException(BrokerErrorCode.InvalidArgument, $"a durable subscription can span at most {MaxTopics} topics");
            }

            var entry = HeaderBytes + ((long)count * EntryBytes);
            var name = _file.Bytes(entry, 257);
            var written = Encoding.UTF8.GetBytes(topic, name[1..]);
            name[0] = (byte)written;
            _file.Write(1, count + 1);
            _file.Write(SlotOf(count), nextOffset + 1);
            _index[topic] = count;
        }
    }

    /// <summary>msync now, on this thread: only needed against OS crashes.</summary>
    public void Flush()
    {
        lock (_gate)
        {
            _file.Flush();
        }
    }

    /// <summary>After a commit: has the flusher msync the file (no-op without one); returns the generation that covers it.</summary>
    public long RequestSync() => _file.RequestSync();

    /// <summary>Completes once a sync covers <paramref name="generation"/> (<see cref="MappedStateFile.WaitForSyncAsync"/>).</summary>
    public Task WaitForSyncAsync(long generation) => _file.WaitForSyncAsync(generation);

    /// <summary>The sync generation requested last (0: never).</summary>
    public long SyncRequested => _file.SyncRequested;

    /// <summary>The sync generation the last msync covers.</summary>
    public long Synced => _file.Synced;

    /// <summary>Unmaps the file once no call is using it; every call after it throws <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _file.Dispose();
        }
    }

    private static long SlotOf(int entryIndex) => (HeaderBytes + ((long)entryIndex * EntryBytes) + 256) / 8;
}
