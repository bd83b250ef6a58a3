using System.Net.Sockets;
using FastBroker.Engine;
using FastBroker.Journal;

namespace FastBroker.Replication.Internal;

// The handshake's answer: the primary's epoch and history, and what to cut from each topic before it streams.
internal sealed partial class StandbyReplica
{
    /// <summary>
    /// Acts on the primary's WELCOME: read and checked whole first (its epoch history, every topic directive), then
    /// applied. A WELCOME that does not parse is a protocol error of this link: false with the reason, naming the
    /// primary, and nothing changed — no topic cut, the epoch and history as they were.
    /// </summary>
    private bool Welcome(Socket socket, PeerAddress primary, ReadOnlySpan<byte> body, out string why)
    {
        if (!TryReadWelcome(body, out var welcome, out var error))
        {
            why = $"malformed WELCOME from the primary at {primary}{(welcome.PrimaryId is { } id ? $" ('{id}')" : "")}: {error}; not following it";
            return false;
        }

        var (epoch, primaryId, history, directives) = welcome;
        if (epoch < _state.Epoch)
        {
            why = $"primary '{primaryId}' is at epoch {epoch}, older than this node's {_state.Epoch}: not following it";
            var f = new FrameBuffer(256);
            f.Begin(FrameKind.Refuse).I64(_state.Epoch).U8((byte)NodeRole.Standby).Str(why).End();
            f.SendTo(socket);
            return false;
        }

        foreach (var (topic, action, offset) in directives!)
        {
            Apply(topic, action, offset);
        }

        _state.Follow(epoch, history!);
        PrimaryId = primaryId;
        Welcomes++;
        _options.Log?.Invoke($"replication: following primary '{primaryId}' at epoch {epoch}");
        why = "";
        return true;
    }

    /// <summary>
    /// Parses a WELCOME body: epoch, primary id, epoch history, then (topic, action, offset) directives, each naming a
    /// topic this node holds (the ones its HELLO reported), once, with a known action and an offset of at least 0.
    /// </summary>
    private bool TryReadWelcome(ReadOnlySpan<byte> body, out WelcomeFrame welcome, out string error)
    {
        welcome = default;
        try
        {
            var r = new FrameReader(body);
            var epoch = r.I64();
            var primaryId = r.Str();
            welcome = welcome with { PrimaryId = primaryId };
            var historyText = r.Str();
            var n = r.U32();
            var directives = new List<(string Topic, TopicAction Action, long Offset)>();
            var named = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < n; i++)
            {
                var topic = r.Str();
                var action = (TopicAction)r.U8();
                var offset = r.I64();
                if (!TopicName.IsValid(topic) || !named.Add(topic) || JournalOf(topic) is null)
                {
                    error = $"directive {i + 1} of {n} names '{topic}', not a topic of this node's (once)";
                    return false;
                }

                if (!Enum.IsDefined(action) || offset < 0)
                {
                    error = $"directive {i + 1} of {n} for topic '{topic}': action {(byte)action} at offset {offset} is not one this node knows";
                    return false;
                }

                if (action != TopicAction.Keep)
                {
                    directives.Add((topic, action, offset));
                }
            }

            if (epoch < 0)
            {
                error = $"epoch {epoch}";
                return false;
            }

            if (!NodeState.TryParseHistory(historyText, out var history, out error))
            {
                error = "epoch history: " + error;
                return false;
            }

            welcome = new WelcomeFrame(epoch, primaryId, history, directives);
            return true;
        }
        catch (InvalidDataException ex)
        {
            error = ex.Message;
            return false;
        }
    }

    private void Apply(string topic, TopicAction action, long offset)
    {
        ReplicaTopic? t;
        lock (_byName)
        {
            _byName.Remove(topic, out t);
        }

        var dir = Path.Combine(_topicsRoot, topic);
        var journalDir = Path.Combine(dir, TopicRegistry.JournalDirectory);
        t?.Journal.Dispose();
        string report;
        switch (action)
        {
            case TopicAction.Truncate:
                var dropped = JournalLog.TruncateFrom(journalDir, JournalOptionsFor(dir), offset);
                report = $"topic '{topic}': cut at offset {offset} (not on the new primary): {(dropped is null ? "nothing" : dropped.ToString())}";
                break;
            case TopicAction.Reset:
                var before = t?.Journal.NextOffset;
                ResetCopy(topic, dir, offset);
                report = $"topic '{topic}': copy restarted at offset {offset} (the primary no longer has offsets before it; local copy ended at {before})";
                break;
            default:
                DeleteCopy(dir);
                report = $"topic '{topic}': deleted (not in the primary's history)";
                break;
        }

        AddTruncation(report);
        _options.Log?.Invoke("replication: " + report);
        if (action == TopicAction.Truncate)
        {
            Open(topic, dir, 0);
        }
    }

    /// <summary>
    /// Right after the WELCOME (its cuts applied): what this node holds of the state files, as STATE_DIGESTS
    /// (<see cref="StateDigests"/>: each copy synced, then digested), so that the primary sends whole only those that
    /// differ from its own or are missing, a copy damaged on disk since it was written included. A sync that fails
    /// reports none: every file then comes whole, and is synced before its STATE_ACK as any copy is.
    /// </summary>
    private void SendStateDigests(Socket socket)
    {
        var digests = StateDigests.Collect(_options.DataDirectory, out var failure);
        if (failure is not null)
        {
            _options.Log?.Invoke($"replication: syncing this node's state files failed ({failure}): reporting none, so the primary sends each whole");
        }

        NoteUnreportedCopies(digests);
        var f = new FrameBuffer(4096);
        StateDigests.Write(f, digests ?? []);
        lock (_sendLock)
        {
            f.SendTo(socket);
        }
    }

    /// <summary>Receive thread: adds <paramref name="report"/> to <see cref="Truncations"/> as a new array (a reader's snapshot never changes).</summary>
    private void AddTruncation(string report) => Volatile.Write(ref _truncations, [.. Volatile.Read(ref _truncations), report]);

    /// <summary>A WELCOME as read (<see cref="PrimaryId"/> alone when it did not parse further).</summary>
    private readonly record struct WelcomeFrame(
        long Epoch,
        string? PrimaryId,
        SortedDictionary<long, Dictionary<string, long>>? History,
        List<(string Topic, TopicAction Action, long Offset)>? Directives);
}
