using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using FastBroker.Client.Internal;
using FastBroker.Protocol;

namespace FastBroker.Client;

/// <summary>Request-reply (docs/protocol.md, section 9).</summary>
public sealed partial class BrokerClient
{
    // The inbox credit: replies are taken as they arrive, so this only bounds a burst.
    private const int InboxCredit = 1024;

    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<ClientMessage>> _replies = new();
    private readonly string _inboxTopic = "_inbox." + RandomNumberGenerator.GetHexString(16, lowercase: true);
    private Task? _inboxReady;
    private BrokerClientException? _inboxRefusal; // under _sync: the inbox refused for good on connection _inboxRefusalGeneration
    private long _inboxRefusalGeneration;
    private long _nextCorrelationId;

    /// <summary>The topic this client's replies are published to (its <c>fb-reply-to</c>).</summary>
    public string InboxTopic => _inboxTopic;

    /// <summary>True once the server has accepted the reply inbox's SUBSCRIBE (tests wait on it; not part of the API).</summary>
    internal bool InboxSubscribed
    {
        get
        {
            lock (_sync)
            {
                return _inboxReady is { IsCompletedSuccessfully: true };
            }
        }
    }

    /// <summary>
    /// Sends a request and waits for the reply: publishes to <paramref name="topic"/> with <c>fb-reply-to</c> = this
    /// client's inbox topic and a fresh 8-byte <c>fb-correlation-id</c>, then waits for the message on the inbox
    /// carrying the same id. The inbox (one topic per client instance, kept across reconnects, so a reply published
    /// during a reconnect still arrives) is subscribed on first use.
    /// </summary>
    /// <remarks>
    /// When the server refuses the inbox for good (its first SUBSCRIBE, or its resume after a reconnect, answered with a
    /// code other than <see cref="ErrorCode.Closed"/>, <see cref="ErrorCode.NotPrimary"/>, <see cref="ErrorCode.Timeout"/>,
    /// <see cref="ErrorCode.ResourceExhausted"/> and <see cref="ErrorCode.TooManySubscriptions"/>: e.g.
    /// <see cref="ErrorCode.Forbidden"/>, the token may not read <c>_inbox.</c> topics), no reply can arrive: the requests
    /// waiting for one fail at once with the refusal, and so does every request made until the next connection, which
    /// subscribes the inbox again on the next request.
    /// <para>
    /// After a reconnect the inbox resumes past the last reply received; when the server restarted (the inbox, a
    /// transient topic, renumbered from 0) a server granting <see cref="ProtocolFeatures.OffsetFallback"/> starts it at
    /// its earliest reply, so one stored before the resume still arrives. A server that does not grant it (one that
    /// predates it) would start at the head and skip that reply, so there the inbox resumes at its earliest reply: what
    /// it still holds (at most 1,024 replies) is delivered again and dropped unless a request waits for it.
    /// </para>
    /// </remarks>
    /// <exception cref="BrokerClientException"><see cref="ErrorCode.Timeout"/> when no reply came within <paramref name="timeout"/>, which bounds the whole request (also while the client is between connections: a request still queued then may yet be sent, its reply discarded); the publish's error if the request was refused; the inbox's refusal (its code, the inbox topic and the server's reason in <see cref="BrokerClientException.Reason"/>, the server's error as the inner exception) when the server refused the inbox for good on this connection.</exception>
    public async ValueTask<ClientMessage> RequestAsync(string topic, ReadOnlyMemory<byte> payload, TimeSpan timeout, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);

        // The timeout bounds the whole request: subscribing the inbox and the request's publish wait for a connection,
        // and between connections that could be up to ReconnectTimeout (60 s) however short the caller's timeout.
        using var expiry = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        expiry.CancelAfter(timeout);
        var correlationId = 0UL;
        try
        {
            await EnsureInboxAsync(expiry.Token).ConfigureAwait(false);
            correlationId = (ulong)Interlocked.Increment(ref _nextCorrelationId);
            var reply = new TaskCompletionSource<ClientMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
            _replies[correlationId] = reply;
            if (InboxRefusal() is { } refused)
            {
                throw CopyFailure(refused); // refused after EnsureInboxAsync: FailPendingReplies may have run before the line above
            }

            var headers = new PublishHeaders();
            if (options?.Headers is { } user)
            {
                headers.AddEncoded(user.Encoded, user.Count);
            }

            headers.Add(Encoding.UTF8.GetString(ProtocolHeaders.ReplyTo), _inboxTopic);
            AddCorrelationId(headers, correlationId);
            var publish = (options ?? PublishOptions.Default) with { Headers = headers };
            await PublishAsync(topic, payload.Span, publish, expiry.Token).ConfigureAwait(false);
            return await reply.Task.WaitAsync(expiry.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested && expiry.IsCancellationRequested)
        {
            // A request still queued may yet be sent (as a canceled PublishAsync may): its reply is then discarded.
            throw new BrokerClientException(ErrorCode.Timeout, $"no reply from '{topic}' within {timeout.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)} ms{(IsConnected ? "" : " (the client is not connected)")}", ex);
        }
        finally
        {
            if (correlationId != 0)
            {
                _replies.TryRemove(correlationId, out _);
            }
        }
    }

    private static void AddCorrelationId(PublishHeaders headers, ulong correlationId)
    {
        Span<byte> id = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(id, correlationId);
        headers.Add(Encoding.UTF8.GetString(ProtocolHeaders.CorrelationId), id);
    }

    /// <summary>
    /// Answers a request received by a subscription: publishes <paramref name="payload"/> to its <c>fb-reply-to</c>
    /// topic with its <c>fb-correlation-id</c>, and completes with the reply's offset.
    /// </summary>
    /// <exception cref="ArgumentException">The message carries no <c>fb-reply-to</c> header, or one that is not a topic name's text (not valid UTF-8, or over 255 bytes); nothing was sent.</exception>
    public ValueTask<long> ReplyAsync(ClientMessage request, ReadOnlySpan<byte> payload, PublishOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.Headers.TryGetValue(ProtocolHeaders.ReplyTo, out var replyTo) || replyTo.IsEmpty)
        {
            throw new ArgumentException("The message carries no fb-reply-to header: it is not a request.", nameof(request));
        }

        if (replyTo.Length > ProtocolConstants.MaxNameLength || !System.Text.Unicode.Utf8.IsValid(replyTo.Span))
        {
            // Decoded leniently, invalid bytes would become U+FFFD, another topic name than the one the requester gave.
            throw new ArgumentException(
                replyTo.Length > ProtocolConstants.MaxNameLength
                    ? $"The message's fb-reply-to header is {replyTo.Length} bytes: a topic name is 1 to 255 UTF-8 bytes; nothing was sent."
                    : "The message's fb-reply-to header is not valid UTF-8, so it names no topic; nothing was sent.",
                nameof(request));
        }

        var headers = new PublishHeaders();
        if (options?.Headers is { } user)
        {
            headers.AddEncoded(user.Encoded, user.Count);
        }

        if (request.Headers.TryGetValue(ProtocolHeaders.CorrelationId, out var correlation))
        {
            headers.Add(Encoding.UTF8.GetString(ProtocolHeaders.CorrelationId), correlation.Span);
        }

        var publish = (options ?? PublishOptions.Default) with { Headers = headers };
        return PublishAsync(Encoding.UTF8.GetString(replyTo.Span), payload, publish, cancellationToken);
    }

    private async Task EnsureInboxAsync(CancellationToken cancellationToken)
    {
        Task ready;
        SubscriptionState? open = null;
        lock (_sync)
        {
            if (_inboxRefusal is { } refused)
            {
                if (_inboxRefusalGeneration == _generation)
                {
                    throw CopyFailure(refused); // no reply can arrive on this connection: fail now, not at the timeout
                }

                _inboxRefusal = null; // another connection (perhaps another server): ask again
            }

            if (_inboxReady is null)
            {
                open = new SubscriptionState(NextSubscriptionId(), SubscriptionKind.Inbox, _inboxTopic, InboxCredit);
                _inboxReady = open.Ready.Task;
            }

            ready = _inboxReady;
        }

        if (open is not null)
        {
            _ = OpenInboxAsync(open);
        }

        try
        {
            await ready.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (ready.IsFaulted || ready.IsCanceled)
        {
            lock (_sync)
            {
                if (_inboxReady == ready)
                {
                    _inboxReady = null; // let the next request try again
                }
            }

            throw;
        }
    }

    private async Task OpenInboxAsync(SubscriptionState inbox)
    {
        try
        {
            await OpenAsync(inbox, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Observed through inbox.Ready by the requests waiting for it.
        }
    }

    private BrokerClientException? InboxRefusal()
    {
        lock (_sync)
        {
            return _inboxRefusal is { } refused && _inboxRefusalGeneration == _generation ? refused : null;
        }
    }

    /// <summary>
    /// The server refused the inbox (its SUBSCRIBE or its resume) or ended it on connection <paramref name="generation"/>:
    /// no reply can arrive. The next request subscribes it again, at once unless the refusal is for good; then it and
    /// every request until the next connection fail with the refusal, as do the requests waiting for a reply now.
    /// </summary>
    private void OnInboxEnded(SubscriptionState inbox, long generation, BrokerClientException error)
    {
        var code = error.ErrorCode;
        var refusal = new BrokerClientException(code, $"the reply inbox '{_inboxTopic}' was refused: {error.Reason}", error);
        lock (_sync)
        {
            if (_inboxReady == inbox.Ready.Task)
            {
                _inboxReady = null;
            }

            if (!IsRetriableResumeRefusal(code) && code != ErrorCode.TooManySubscriptions)
            {
                _inboxRefusal = refusal;
                _inboxRefusalGeneration = generation;
            }
        }

        FailPendingReplies(refusal);
    }

    private void OnReply(ClientMessage message)
    {
        if (message.Headers.TryGetValue(ProtocolHeaders.CorrelationId, out var id) && id.Length == 8
            && _replies.TryRemove(BinaryPrimitives.ReadUInt64LittleEndian(id.Span), out var waiting))
        {
            waiting.TrySetResult(message);
        }
    }

    private void FailPendingReplies(BrokerClientException error)
    {
        foreach (var (id, waiting) in _replies)
        {
            if (_replies.TryRemove(id, out _))
            {
                waiting.TrySetException(CopyFailure(error));
            }
        }
    }
}
