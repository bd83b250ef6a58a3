using System.Buffers;
using System.Text;
using System.Threading.Channels;
using FastBroker.Protocol;

namespace FastBroker.Client.Internal;

/// <summary>
/// The client-side state of one subscription or membership, kept across reconnects: what to resubscribe with, the
/// per-topic positions that make redeliveries after a reconnect invisible, the buffer the application reads, and the
/// credit accounting.
/// </summary>
/// <remarks>
/// Credit invariant (fan-out): server credit + messages in flight + <see cref="Buffered"/> + <see cref="Unreturned"/>
/// = <see cref="Credit"/>. The application taking a message moves it from Buffered to Unreturned; every
/// <see cref="CreditThreshold"/> taken go back as one CREDIT. A new connection starts with Credit − Buffered and
/// Unreturned = 0, so the buffer (capacity Credit) can never overflow and the reader loop never waits on it.
/// Lock order: the client's lock may be held when taking <see cref="Gate"/>, never the other way round.
/// </remarks>
internal sealed class SubscriptionState
{
    private readonly Dictionary<string, TopicPosition> _topics = new(StringComparer.Ordinal);

    // The offset this connection's SUBSCRIBE resumed at (StartKind.Offset after messages were received), -1 = none.
    private long _resumeOffset = -1;

    public SubscriptionState(uint id, SubscriptionKind kind, string pattern, int credit, MessageSink? sink = null)
    {
        Id = id;
        Kind = kind;
        Pattern = pattern;
        PatternUtf8 = Utf8Names.Encode(pattern, kind == SubscriptionKind.Group ? "topic" : nameof(pattern)); // JoinGroupAsync's parameter is its topic
        Credit = credit;
        Sink = sink;
        if (kind != SubscriptionKind.Inbox && sink is null)
        {
            Channel = System.Threading.Channels.Channel.CreateBounded<ClientMessage>(new BoundedChannelOptions(credit)
            {
                SingleWriter = true,
                FullMode = BoundedChannelFullMode.Wait,
            });
        }
    }

    public uint Id { get; }

    public SubscriptionKind Kind { get; }

    /// <summary>Pattern (fan-out, inbox) or topic (group).</summary>
    public string Pattern { get; }

    public byte[] PatternUtf8 { get; }

    /// <summary>Initial credit (fan-out, inbox) or prefetch (group).</summary>
    public int Credit { get; }

    public SubscribeStart Start { get; init; } = SubscribeStart.Latest;

    public string? DurableName { get; init; }

    public byte[] DurableUtf8 { get; init; } = [];

    public byte[] Filters { get; init; } = [];

    public string? Group { get; init; }

    public byte[] GroupUtf8 { get; init; } = [];

    public uint VisibilityTimeoutMs { get; init; }

    public ushort MaxDeliveries { get; init; }

    public object Gate { get; } = new();

    /// <summary>Null when the application reads the channel; otherwise a handler subscription (fan-out) delivering on the reader loop.</summary>
    public Channel<ClientMessage>? Channel { get; }

    /// <summary>The handler of a handler subscription (<see cref="BrokerClient.ConsumeAsync{THandler}"/>), or null.</summary>
    public MessageSink? Sink { get; }

    /// <summary>Completed by the first OK (the first offset to be delivered), or failed by the first ERROR.</summary>
    public TaskCompletionSource<ulong> Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completed when it ends: successfully when the application closed it, failed with the reason when the server
    /// ended it (or refused its resume for good) or the client gave up (<see cref="ClientConsumer.Completion"/>).
    /// </summary>
    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The connection it was last (re)subscribed on; credit, acks and nacks of another one are dropped.</summary>
    public long Generation { get; set; }

    public int Buffered { get; private set; }

    /// <summary>The OK of the first SUBSCRIBE of a concrete topic: the offset it started at (-1 = not known, or a wildcard).</summary>
    public long FirstOffset { get; private set; } = -1;

    /// <summary>The pattern has <c>*</c> or <c>&gt;</c> tokens: several topics, offsets per topic.</summary>
    public bool IsWildcard => Kind != SubscriptionKind.Group && Array.Exists(Pattern.Split('.'), t => t is "*" or ">");

    public int Unreturned { get; private set; }

    public bool EverReceived { get; private set; }

    public bool Ended { get; private set; }

    /// <summary>ACK tags waiting for the writer (group), guarded by the client's lock.</summary>
    public List<DeliveryTag> PendingAcks { get; } = [];

    public bool AckQueued { get; set; }

    public int CreditThreshold => Math.Max(1, Credit / 2);

    /// <summary>
    /// Reader loop: takes a delivery. Fan-out and inbox drop a message at or below the topic's last received offset
    /// (a redelivery after a reconnect) and count it as consumed. Returns the message (null when dropped), and the
    /// credit to send back now (0 = none).
    /// </summary>
    public ClientMessage? Accept(long generation, uint deliveryCount, ulong offset, long timestampNs, ReadOnlySpan<byte> topic, in ReadOnlySequence<byte> block, int keyLength, in HeaderBlock headers, int payloadLength, out uint credit, out bool overflow)
    {
        credit = 0;
        overflow = false;
        lock (Gate)
        {
            if (Ended)
            {
                return null;
            }

            TopicPosition? position = null;
            if (Kind != SubscriptionKind.Group)
            {
                position = GetTopic(topic);
                CheckRenumbered(position, generation, offset);
                if ((long)offset <= position.LastReceived)
                {
                    credit = CountTaken();
                    return null;
                }

                position.LastReceived = (long)offset;
                EverReceived = true;
            }

            var message = new ClientMessage(this, position, generation, position?.Name ?? Pattern, offset, timestampNs, deliveryCount, block.ToArray(), keyLength, (int)headers.Entries.Length, headers.Count, payloadLength);
            if (Kind == SubscriptionKind.Inbox)
            {
                credit = CountTaken();
                return message;
            }

            if (!Channel!.Writer.TryWrite(message))
            {
                // A member's buffer is full only when a buffered delivery is no longer the member's: the server holds at
                // most the prefetch in flight with it, and one timed out (visibility timeout) while it waited here freed
                // its place for this one. Deliveries time out in the order they were made, which is the buffer's order,
                // so the oldest is the stale one: it goes (its ACK could only be refused), this one stays. Dropping this
                // one instead left it in flight with nobody working on it until its own timeout, which could
                // dead-letter it (WorkQueueTests.A_member_slower_than_the_visibility_timeout_…).
                if (Kind != SubscriptionKind.Group || !Channel.Reader.TryRead(out _) || !Channel.Writer.TryWrite(message))
                {
                    overflow = true;
                    return null;
                }

                Buffered--;
            }

            Buffered++;
            return message;
        }
    }

    /// <summary>
    /// Reader loop, handler subscriptions: takes a delivery the handler is about to consume. False for a redelivery
    /// at or below the topic's last received offset (dropped, but counted as consumed) or when the subscription has
    /// ended. The handler consumes it synchronously, so it is counted for credit at once: <paramref name="credit"/>
    /// &gt; 0 = send that much CREDIT (after the handler has run). A durable one then calls <see cref="MarkConsumed"/>.
    /// </summary>
    public bool TryAcceptForHandler(long generation, ulong offset, ReadOnlySpan<byte> topic, out TopicPosition position, out uint credit)
    {
        lock (Gate)
        {
            credit = 0;
            position = null!;
            if (Ended)
            {
                return false;
            }

            position = GetTopic(topic);
            credit = CountTaken();
            CheckRenumbered(position, generation, offset);
            if ((long)offset <= position.LastReceived)
            {
                return false;
            }

            position.LastReceived = (long)offset;
            EverReceived = true;
            return true;
        }
    }

    /// <summary>Reader loop, durable handler subscriptions: the handler returned from <paramref name="offset"/>, so a commit covers it.</summary>
    public void MarkConsumed(TopicPosition position, ulong offset)
    {
        lock (Gate)
        {
            if ((long)offset > position.LastConsumed)
            {
                position.LastConsumed = (long)offset;
            }
        }
    }

    /// <summary>The application takes the next message; <paramref name="credit"/> &gt; 0 = send that much CREDIT on <paramref name="generation"/>.</summary>
    public bool TryTake(out ClientMessage message, out uint credit, out long generation)
    {
        credit = 0;
        lock (Gate)
        {
            generation = Generation;
            while (Channel!.Reader.TryRead(out message!))
            {
                Buffered--;
                if (Kind == SubscriptionKind.Group)
                {
                    if (message.Generation != Generation)
                    {
                        continue; // delivered on a lost connection: the server has requeued it
                    }

                    return true;
                }

                if (message.Position is { } p && message.Offset > p.LastConsumed)
                {
                    p.LastConsumed = message.Offset;
                }

                credit = CountTaken();
                return true;
            }

            return false;
        }
    }

    /// <summary>
    /// An OK for this subscription's SUBSCRIBE or JOIN_GROUP (<paramref name="value"/>: the first offset to be
    /// delivered). A resume from an offset answered with a lower one means the topic's offsets went back: a transient
    /// topic (every client's reply inbox among them) after a server restart or a failover, or a persistent one whose
    /// unreplicated tail a failover cut. What comes from there on is new, so the positions follow the server instead
    /// of dropping everything up to the old offset as redeliveries.
    /// </summary>
    public void OnSubscribed(ulong value, ControlOp op)
    {
        lock (Gate)
        {
            if (Kind != SubscriptionKind.Group && !IsWildcard && value <= long.MaxValue)
            {
                if (FirstOffset < 0)
                {
                    FirstOffset = (long)value;
                }
                else if (op.Start == StartKind.Offset && value < op.Offset)
                {
                    FirstOffset = Math.Min(FirstOffset, (long)value);
                    foreach (var p in _topics.Values)
                    {
                        p.LastReceived = Math.Min(p.LastReceived, (long)value - 1);
                    }
                }
            }
        }

        Ready.TrySetResult(value);
    }

    /// <summary>Positions to commit: (topic, next offset) for every topic consumed past its last commit.</summary>
    public List<(string Topic, long Next)> GetCommitPositions()
    {
        lock (Gate)
        {
            var list = new List<(string, long)>();
            foreach (var p in _topics.Values)
            {
                if (p.LastConsumed >= 0 && p.LastConsumed + 1 > p.Committed)
                {
                    list.Add((p.Name, p.LastConsumed + 1));
                }
            }

            return list;
        }
    }

    public void MarkCommitted(string topic, long next)
    {
        lock (Gate)
        {
            if (_topics.TryGetValue(topic, out var p) && next > p.Committed)
            {
                p.Committed = next;
            }
        }
    }

    /// <summary>
    /// A new connection: the SUBSCRIBE or JOIN_GROUP to send on it, with the credit and start that make the stream
    /// continue where the application is (see the class remarks). Null when the subscription has ended.
    /// </summary>
    /// <param name="generation">The new connection.</param>
    /// <param name="granted">What its WELCOME granted: without <see cref="ProtocolFeatures.OffsetFallback"/> the inbox resumes at Earliest.</param>
    public ControlOp? PrepareResubscribe(long generation, ProtocolFeatures granted)
    {
        lock (Gate)
        {
            if (Ended)
            {
                return null;
            }

            Generation = generation;
            Unreturned = 0;
            _resumeOffset = -1;
            if (Kind == SubscriptionKind.Group)
            {
                // Their tags died with the old connection and the server has requeued them.
                while (Channel!.Reader.TryRead(out _))
                {
                }

                Buffered = 0;
                return new ControlOp(ControlKind.JoinGroup, generation, this) { Value = (uint)Credit };
            }

            var credit = (uint)Math.Max(0, Credit - Buffered);

            // The reply inbox resumes with fallback Earliest: when the inbox was renumbered (a transient topic after a
            // broker restart) and its head is below the resume offset, the server starts it at its earliest message,
            // not at the head, so a reply stored before this resubscribe still arrives (the OK's lower offset resets
            // the positions: OnSubscribed). Replies are matched by correlation id, so one seen twice is harmless.
            var fallback = Kind == SubscriptionKind.Inbox ? StartKind.Earliest : StartKind.Latest;
            if (Kind == SubscriptionKind.Inbox && (granted & ProtocolFeatures.OffsetFallback) == 0 && (EverReceived || FirstOffset >= 0))
            {
                // A server that does not grant the fallback (one that predates it) starts an Offset resume past the
                // head at the head, which skipped such a reply: the request timed out. The client cannot tell a
                // renumbered inbox before the OK, so it takes the whole inbox again, at most its 1,024-message ring,
                // every message accepted (no offset is a redelivery) and matched by correlation id: a reply already
                // taken, or to a request given up, finds no waiting request and is dropped (docs/client.md).
                foreach (var p in _topics.Values)
                {
                    p.LastReceived = -1;
                }

                return new ControlOp(ControlKind.Subscribe, generation, this) { Value = credit, Start = StartKind.Earliest };
            }

            if (!EverReceived)
            {
                // A concrete topic that had started (the first OK named its offset) continues from there, durable or
                // not, so that what was published while disconnected is not skipped by a Latest start; otherwise the
                // original start.
                return FirstOffset >= 0
                    ? new ControlOp(ControlKind.Subscribe, generation, this) { Value = credit, Start = StartKind.Offset, Offset = (ulong)FirstOffset, Fallback = fallback }
                    : new ControlOp(ControlKind.Subscribe, generation, this) { Value = credit, Start = Start.Kind, Offset = Start.Value, Fallback = Start.Fallback };
            }

            if (DurableName is not null)
            {
                // The committed position is at or before what was received; Earliest for topics never committed, so
                // nothing published meanwhile is missed. Everything up to LastReceived is dropped on arrival.
                return new ControlOp(ControlKind.Subscribe, generation, this) { Value = credit, Start = StartKind.Committed, Fallback = StartKind.Earliest };
            }

            var next = long.MaxValue;
            foreach (var p in _topics.Values)
            {
                if (p.LastReceived >= 0)
                {
                    next = Math.Min(next, p.LastReceived + 1);
                }
            }

            _resumeOffset = next;
            return new ControlOp(ControlKind.Subscribe, generation, this) { Value = credit, Start = StartKind.Offset, Offset = (ulong)next, Fallback = fallback };
        }
    }

    /// <summary>
    /// Under the gate, on a topic's first delivery on a connection: one resumed at <see cref="StartKind.Offset"/> N
    /// starts every topic at N or after it unless the topic no longer holds N (the server clamps the start to the
    /// topic's head). Every topic received before had N − 1 at least (N is the smallest next offset), so a first
    /// delivery below N, at or below the last one received, means the topic's offsets went back (a transient topic
    /// after a restart or failover, or a persistent one whose unreplicated tail a failover cut): what comes from there is
    /// new. A wildcard subscription's OK names no offset (0), so this is where it learns it, per topic (a concrete
    /// topic's OK tells already: <see cref="OnSubscribed"/>); before, every message was dropped as a redelivery until
    /// the topic passed its old offsets. Undetectable when the topic grew past N again before the resubscribe.
    /// </summary>
    private void CheckRenumbered(TopicPosition position, long generation, ulong offset)
    {
        if (position.Generation == generation)
        {
            return;
        }

        position.Generation = generation;
        if (generation == Generation && (long)offset < _resumeOffset && (long)offset <= position.LastReceived)
        {
            position.LastReceived = (long)offset - 1;
        }
    }

    /// <summary>
    /// Ends it: no more deliveries are accepted. Readers finish once the buffer is drained, then throw
    /// <paramref name="error"/> (or just stop when <paramref name="quietly"/>); a pending first subscribe fails with it.
    /// </summary>
    public bool End(Exception error, bool quietly)
    {
        lock (Gate)
        {
            if (Ended)
            {
                return false;
            }

            Ended = true;
        }

        Channel?.Writer.TryComplete(quietly ? null : error);
        Ready.TrySetException(error);
        if (quietly)
        {
            Completion.TrySetResult();
        }
        else
        {
            Completion.TrySetException(error);
            _ = Completion.Task.Exception; // observed: SubscriptionEnded reports it to an application that does not await it
        }

        return true;
    }

    private uint CountTaken()
    {
        if (++Unreturned < CreditThreshold)
        {
            return 0;
        }

        var credit = (uint)Unreturned;
        Unreturned = 0;
        return credit;
    }

    private TopicPosition GetTopic(ReadOnlySpan<byte> utf8)
    {
        // Topic names are at most 255 bytes, so at most 255 UTF-16 chars: decode on the stack and look up without
        // allocating; only a topic seen for the first time makes a string.
        Span<char> chars = stackalloc char[ProtocolConstants.MaxNameLength];
        var length = Encoding.UTF8.GetChars(utf8, chars);
        var lookup = _topics.GetAlternateLookup<ReadOnlySpan<char>>();
        if (!lookup.TryGetValue(chars[..length], out var position))
        {
            var name = new string(chars[..length]);
            position = new TopicPosition(name);
            _topics.Add(name, position);
        }

        return position;
    }
}
