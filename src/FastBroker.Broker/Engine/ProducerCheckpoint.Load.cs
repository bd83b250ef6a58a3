using System.Buffers.Binary;
using System.Text;
using FastBroker.Journal;

namespace FastBroker.Engine;

// Reading producers.state at open: each entry checked against the journal, then the epochs and the capture points.
internal sealed partial class ProducerCheckpoint
{
    /// <summary>
    /// Reads the file (absent, unreadable or damaged: nothing; unreadable or damaged, <paramref name="problem"/> says so) and returns each entry whose record the topics' journals still hold
    /// with that producer and sequence, through <paramref name="verify"/>, with the producer's newest write (that record's
    /// timestamp if later, or alone in a version 1 file), the record's producer epoch and the entry's previous place
    /// (unchecked: the open's own write keeps it); for an entry whose record they do not hold, its previous place
    /// instead if they hold that one's (with no previous place then); and an entry whose record retention deleted, in
    /// the same creation of its topic, as the running broker held it (<see cref="TrustBelowRetention"/>).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem) =>
        Load(dataDirectory, verify, topicOf, out problem, out _);

    /// <summary>
    /// As the overload without <paramref name="epochs"/>, and also each id's newest epoch when the file was written (none
    /// in a version 1 or 2 file), unchecked (it can only fence), with the id's last use (Unix ms; in a version 3 file,
    /// which has none, the epoch itself: the Unix ms it was given at, at least).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs) =>
        Load(dataDirectory, verify, topicOf, out problem, out epochs, out _);

    /// <summary>
    /// As the overload without <paramref name="capturedAt"/>, and also where the capture was taken in each persistent
    /// topic's journal (its next offset then: every record below it is in the capture; a topic not named was created
    /// after it) and in which creation of the topic (0 in a file of version 7 or older); null when the file does not say
    /// (none, damaged, version 1 to 5, or written without topics).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs, out Dictionary<string, CapturePoint>? capturedAt) =>
        Load(dataDirectory, verify, topicOf, out problem, out epochs, out capturedAt, out _);

    /// <summary>
    /// As the overload without <paramref name="capturedTime"/>, and also when the capture points were taken (Unix ms of
    /// the stamp clock: no record a topic held below its point is stamped later); null when the file does not say
    /// (version 6 or older, or no capture points).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs, out Dictionary<string, CapturePoint>? capturedAt, out long? capturedTime) =>
        Load(dataDirectory, verify, topicOf, out problem, out epochs, out capturedAt, out capturedTime, out _);

    /// <summary>
    /// As the overload without <paramref name="ignored"/>, and also how many entries vouch for nothing: neither their
    /// newest nor their previous record is in the journals (the open rescans every topic from its first record when the
    /// file was also captured ahead of them: <see cref="Broker"/>'s producer recovery).
    /// </summary>
    public static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> Load(string dataDirectory, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs, out Dictionary<string, CapturePoint>? capturedAt, out long? capturedTime, out int ignored)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(Path.Combine(dataDirectory, FileName));
        }
        catch (FileNotFoundException)
        {
            (problem, ignored, epochs, capturedAt, capturedTime) = (null, 0, [], null, null);
            return [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Unreadable (EIO; a directory in its place or EACCES: UnauthorizedAccessException, not an IOException): the
            // records and producers.epochs, which the open reads besides, know the producers and their epochs.
            (ignored, epochs, capturedAt, capturedTime) = (0, [], null, null);
            problem = $"{FileName}: cannot read it ({ex.Message}): producers are known from the newest records only";
            return [];
        }

        return Read(bytes, verify, topicOf, out problem, out epochs, out capturedAt, out capturedTime, out ignored);
    }

    /// <summary>
    /// The capture points of a file's contents <paramref name="bytes"/>, as the open reads them (null: damaged, none, or
    /// of a version without them): where the capture was taken in each persistent topic's journal, in which creation.
    /// </summary>
    public static Dictionary<string, CapturePoint>? CapturePointsOf(byte[] bytes)
    {
        Read(bytes, (_, _) => null, _ => null, out _, out _, out var capturedAt, out _, out _);
        return capturedAt;
    }

    private static List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long Timestamp, ulong Epoch, ProducerRegistry.Place Previous)> Read(byte[] bytes, Func<string, long, (ulong Producer, ulong Sequence, ulong Epoch, long Timestamp)?> verify, Func<string, TopicState?> topicOf, out string? problem, out List<(ulong Producer, ulong Epoch, long Seen)> epochs, out Dictionary<string, CapturePoint>? capturedAt, out long? capturedTime, out int ignored)
    {
        problem = null;
        ignored = 0;
        epochs = [];
        capturedAt = null;
        capturedTime = null;
        var result = new List<(ulong, ulong, TopicState, long, long, ulong, ProducerRegistry.Place)>();
        var span = bytes.AsSpan();
        var version = span.Length < 16 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(span[4..]);
        if (span.Length < 16 || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic || version is not (1 or 2 or 3 or 4 or 5 or 6 or 7 or Version)
            || Crc32C.Compute(span[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(span[^4..]))
        {
            problem = $"{FileName}: damaged or of an unknown version ({span.Length} bytes): ignored, producers are known from the newest records only";
            return result;
        }

        var count = BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
        var at = 12;
        var end = span.Length - 4;
        var fromPrevious = 0;
        List<(ulong Producer, ulong Highest, TopicState Topic, long Offset, long LastWrite, ProducerRegistry.Place Previous)>? belowRetention = null;
        for (var i = 0u; i < count; i++)
        {
            var fixedLength = version switch { 1 => 26, < 5 => 34, _ => 50 };
            if (at + fixedLength > end)
            {
                problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                break;
            }

            var id = BinaryPrimitives.ReadUInt64LittleEndian(span[at..]);
            var highest = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]);
            var offset = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]);
            var lastWrite = version == 1 ? long.MinValue : BinaryPrimitives.ReadInt64LittleEndian(span[(at + 24)..]);
            var previousHighest = version >= 5 ? BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 32)..]) : 0;
            var previousOffset = version >= 5 ? BinaryPrimitives.ReadInt64LittleEndian(span[(at + 40)..]) : -1;
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(span[(at + fixedLength - 2)..]);
            at += fixedLength;
            if (at + nameLength > end)
            {
                problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                break;
            }

            var name = Encoding.UTF8.GetString(span.Slice(at, nameLength));
            at += nameLength;
            var previousName = "";
            if (version >= 5)
            {
                int previousLength = at + 2 <= end ? BinaryPrimitives.ReadUInt16LittleEndian(span[at..]) : int.MaxValue;
                if (previousLength > end - at - 2)
                {
                    problem = $"{FileName}: entry {i} of {count} runs past the end: ignored from there";
                    break;
                }

                previousName = Encoding.UTF8.GetString(span.Slice(at + 2, previousLength));
                at += 2 + previousLength;
            }

            if (topicOf(name) is { } topic && verify(name, offset) is { } found && (found.Producer, found.Sequence) == (id, highest))
            {
                // Its previous place goes with it: the open's own write keeps it, for a journal that later loses the newest.
                var previous = previousOffset >= 0 && topicOf(previousName) is { } earlierTopic ? new ProducerRegistry.Place(previousHighest, earlierTopic, previousOffset) : default;
                result.Add((id, highest, topic, offset, Math.Max(found.Timestamp, lastWrite), found.Epoch, previous));
            }
            else if (previousOffset >= 0 && topicOf(previousName) is { } previousTopic && verify(previousName, previousOffset) is { } before
                && (before.Producer, before.Sequence) == (id, previousHighest))
            {
                // The newest record is missing (a standby's copy not holding it yet, say), the one the capture before held
                // is here: every record the producer wrote after that capture lies within the rescan (it trails the
                // newest capture's record by at most a capture interval), so it vouches as the newest would have.
                result.Add((id, previousHighest, previousTopic, previousOffset, Math.Max(before.Timestamp, lastWrite), before.Epoch, default));
                fromPrevious++;
            }
            else if (version >= 8 && topicOf(name) is { Journal: { } retained, Incarnation: not 0 } cut && offset >= 0 && offset < retained.FirstOffset)
            {
                // Below the topic's first retained offset: retention deleted it (decided once the capture points are read).
                (belowRetention ??= []).Add((id, highest, cut, offset, lastWrite, previousOffset >= 0 && topicOf(previousName) is { } earlier ? new ProducerRegistry.Place(previousHighest, earlier, previousOffset) : default));
            }
            else
            {
                ignored++;
            }
        }

        if (version >= 3 && problem is null)
        {
            var n = at + 4 <= end ? BinaryPrimitives.ReadUInt32LittleEndian(span[at..]) : uint.MaxValue;
            var entry = version == 3 ? 16 : 24;
            if (n == uint.MaxValue || (long)n * entry > end - at - 4)
            {
                problem = $"{FileName}: the producer epochs run past the end: ignored";
            }
            else
            {
                at += 4;
                for (var i = 0u; i < n; i++, at += entry)
                {
                    var epoch = BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]);
                    var seen = entry == 24 ? BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]) : (long)Math.Min(epoch, long.MaxValue);
                    epochs.Add((BinaryPrimitives.ReadUInt64LittleEndian(span[at..]), epoch, seen));
                }

                if (version >= 7 && at + 8 <= end)
                {
                    capturedTime = BinaryPrimitives.ReadInt64LittleEndian(span[at..]);
                    at += 8;
                }

                if (version >= 6)
                {
                    capturedAt = ReadCapturePoints(span, at, end, version >= 8 ? 18 : 10, out problem);
                    capturedTime = capturedAt is null ? null : capturedTime;
                }
            }
        }

        ignored += TrustBelowRetention(belowRetention, capturedAt, epochs, result);
        if (ignored + fromPrevious > 0 && problem is null)
        {
            problem = $"{FileName}: {ignored + fromPrevious} of {count} producers' newest records are not in this journal (cut, lost with an unsynced tail, or not yet copied): "
                + $"{fromPrevious} of them known from the record of their previous entry, which it holds, {ignored} from the records the open rescans only";
        }

        return result;
    }

    /// <summary>
    /// The capture points (count, u32.MaxValue: unknown; per topic its next offset, from version 8 its creation's id,
    /// then name length, name): <paramref name="fixedLength"/> bytes before each name, 18 from version 8, 10 before.
    /// </summary>
    private static Dictionary<string, CapturePoint>? ReadCapturePoints(ReadOnlySpan<byte> span, int at, int end, int fixedLength, out string? problem)
    {
        const string pastEnd = FileName + ": the capture points run past the end: each topic's rescan is its newest records only";
        problem = null;
        if (at + 4 > end)
        {
            problem = pastEnd;
            return null;
        }

        var n = BinaryPrimitives.ReadUInt32LittleEndian(span[at..]);
        if (n == uint.MaxValue)
        {
            return null;
        }

        at += 4;
        var points = new Dictionary<string, CapturePoint>(StringComparer.Ordinal);
        for (var i = 0u; i < n; i++)
        {
            int length = at + fixedLength <= end ? BinaryPrimitives.ReadUInt16LittleEndian(span[(at + fixedLength - 2)..]) : int.MaxValue;
            if (length > end - at - fixedLength)
            {
                problem = pastEnd;
                return null;
            }

            var incarnation = fixedLength == 18 ? BinaryPrimitives.ReadUInt64LittleEndian(span[(at + 8)..]) : 0;
            points[Encoding.UTF8.GetString(span.Slice(at + fixedLength, length))] = new CapturePoint(BinaryPrimitives.ReadInt64LittleEndian(span[at..]), incarnation);
            at += fixedLength + length;
        }

        return points;
    }
}
