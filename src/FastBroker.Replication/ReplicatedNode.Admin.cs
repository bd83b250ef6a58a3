using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FastBroker.Net;
using FastBroker.Replication.Internal;

namespace FastBroker.Replication;

// The admin HTTP routes: role checks (/primary, /standby) and the status document.
public sealed partial class ReplicatedNode
{
    /// <summary>
    /// Tests only: called by <c>/primary</c>, <c>/standby</c>, <c>/health</c> and <c>/status</c> with the route's path
    /// after the route has read the node's state (<see cref="ReadAdminState"/>) and before it answers, so a test can
    /// change the state in between.
    /// </summary>
    internal Action<string>? AdminStateRead { get; set; }

    private (int, string, byte[])? Route(string method, string path, string query)
    {
        switch (method, path)
        {
            case ("GET", "/status"):
                return (200, "application/json", System.Text.Encoding.UTF8.GetBytes(GetStatusJson()));
            case ("POST", "/promote" or "/promote/force"):
                return PromoteRoute(force: path == "/promote/force");
            case ("GET", "/health" or "/primary" or "/standby"):
                break;
            default:
                return null;
        }

        // Every answer below is made from this one read: its code, status and reason agree.
        var state = ReadAdminState();
        AdminStateRead?.Invoke(path);
        switch (path)
        {
            case "/health" when state.Role != NodeRole.Primary || state.Stopping:
                return (200, "application/json", RoleHealth(state));

            // A load balancer's checks (Patroni's /primary and /replica): the HTTP code says whether this node is the
            // one to send clients to, or a standby following one. A serving primary falls through to the server's
            // /primary (200, the /health document) and /standby (503, the same). Every 503 of a node that does not serve
            // as primary, a stopping primary included, carries a one-line reason.
            case "/primary" when !state.ServesAsPrimary:
                return PrimaryCheck(state);
            case "/standby" when state.Role != NodeRole.Primary || state.Stopping:
                _ = StandbyCheckQuery.TryParse(query, out var maxLag, out _); // the admin server answered a malformed one with 400
                return StandbyCheck(state, maxLag);
            default:
                return null;
        }
    }

    /// <summary>
    /// POST /promote: 200 once promoted; 409 when refused or failed, or when the standby did not take the request up within
    /// <see cref="ReplicationOptions.PromoteAnswerTimeout"/> (it is withdrawn then: no promotion follows); 202 with
    /// <c>"inProgress":true</c> when the standby took it up but has not finished by then (it goes ahead; <c>/status</c>
    /// shows the outcome). Never 409 for a promotion that happens later.
    /// </summary>
    private (int, string, byte[]) PromoteRoute(bool force)
    {
        var wait = _options.PromoteAnswerTimeout;
        Promotion request;
        try
        {
            request = RequestPromotion(force, _stop.Token);
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException)
        {
            return PromoteAnswer(409, false, ex.Message);
        }

        var promoting = request.Task;
        try
        {
            promoting.Wait(wait);
        }
        catch (AggregateException)
        {
        }

        if (!promoting.IsCompleted)
        {
            // Withdrawn (its task cancelled before this returns), unless the standby has taken it up.
            Withdraw(request, CancellationToken.None);
        }

        if (promoting.IsCompletedSuccessfully)
        {
            return (200, "application/json", System.Text.Encoding.UTF8.GetBytes($"{{\"promoted\":true,\"epoch\":{promoting.Result}}}\n"));
        }

        if (promoting.IsCanceled)
        {
            return PromoteAnswer(409, false, _stop.IsCancellationRequested
                ? "the node is stopping: not promoted"
                : $"the standby did not take the promotion up within {wait.TotalSeconds:0.###} s (busy probing its peer or asking the witness): withdrawn, still standby; ask again");
        }

        if (promoting.IsFaulted)
        {
            var ex = promoting.Exception!.InnerException!;
            return PromoteAnswer(409, false, ex.Message);
        }

        return PromoteAnswer(202, true, $"the promotion is under way but not finished after {wait.TotalSeconds:0.###} s; it goes ahead: /status shows its status (promoting until it serves as primary)");
    }

    private static (int, string, byte[]) PromoteAnswer(int code, bool inProgress, string message) =>
        (code, "application/json", System.Text.Encoding.UTF8.GetBytes("{\"promoted\":false," + (inProgress ? "\"inProgress\":true," : "") + "\"error\":\"" + JsonEncodedText.Encode(message) + "\"}\n"));

    /// <summary>
    /// GET /standby on a node that is not primary: 200 only on a standby that follows a primary now, has heard from it
    /// within <see cref="ReplicationOptions.StandbyCheckSilence"/> and, with <paramref name="maxLag"/>, lacks at most
    /// that many records of the heads in its last heartbeat; 503 otherwise, the reason in the body.
    /// </summary>
    private (int, string, byte[]) StandbyCheck(AdminState state, long? maxLag)
    {
        var status = state.Status;
        string reason;
        if (state.Stopping)
        {
            reason = StoppingReason;
        }
        else if (status == "promoting")
        {
            reason = PromotingReason(state);
        }
        else if (state.Role != NodeRole.Standby)
        {
            reason = $"this node is {status}, not a standby";
        }
        else if (state.Replica is not { Connected: true } replica)
        {
            reason = "following no primary (not connected to one, or refused)";
        }
        else
        {
            return FollowingStandbyCheck(state.Epoch, replica.PrimaryId, replica.SinceLastHeard, replica.LagRecords, _options.EffectiveStandbyCheckSilence, maxLag);
        }

        return CheckAnswer(status, state.Epoch, null, null, reason);
    }

    /// <summary>
    /// GET /standby on a standby following <paramref name="primaryId"/>: 503 once it has heard nothing for longer than
    /// <paramref name="silence"/>, or with <paramref name="maxLag"/> while it lacks more records than that (or its lag is
    /// not known yet); 200 otherwise. The silence is counted in whole milliseconds, rounded down: the one number the body's
    /// <c>sinceLastHeardMs</c> and the reason show, and the one compared with the limit.
    /// </summary>
    internal static (int Code, string ContentType, byte[] Body) FollowingStandbyCheck(long epoch, string? primaryId, TimeSpan sinceLastHeard, long? lag, TimeSpan silence, long? maxLag)
    {
        var heardMs = WholeMilliseconds(sinceLastHeard);
        var reason = heardMs > silence.TotalMilliseconds
            ? $"nothing from the primary '{primaryId}' for {heardMs} ms (more than {Milliseconds(silence)} ms, the standby check's silence limit): it may have frozen"
            : maxLag is not { } max ? null
            : lag is not { } behind ? "the primary has not reported its heads yet on this link"
            : behind > max ? $"{behind} records behind the primary '{primaryId}' (lag={max})"
            : null;
        return CheckAnswer("standby", epoch, heardMs, lag, reason);
    }

    /// <summary>
    /// GET /primary on a node that does not serve as primary: 503 with what it is doing instead in one line (the
    /// /standby format): stopping, starting, promoting, fenced (stepping down) or a standby, and whom it follows. Its
    /// status is <see cref="AdminState.Status"/>, of the same read.
    /// </summary>
    private (int, string, byte[]) PrimaryCheck(AdminState state)
    {
        long? sinceLastHeardMs = null;
        long? lag = null;
        string reason;
        if (state.Stopping)
        {
            reason = StoppingReason;
        }
        else if (state.Role == NodeRole.Primary)
        {
            reason = state.NewerEpochSeen is >= 0 and var newer
                ? $"fenced: a newer primary{(state.NewerEpochFrom is { } from ? $" '{from}'" : "")} (epoch {newer}) exists: stepping down"
                : state.FenceReason is { } fence ? $"fenced: {fence}: stepping down"
                : state is { HasLease: true, LeaseValid: false } ? "fenced: its witness lease has run out: stepping down"
                : "primary, not serving clients";
        }
        else if (state.BecomingPrimary > 0)
        {
            reason = PromotingReason(state);
        }
        else if (state.Role == NodeRole.Fenced)
        {
            reason = $"fenced: {state.RoleWhy}; rejoining as standby";
        }
        else if (state.Role == NodeRole.Starting)
        {
            reason = _witness is null ? "starting: deciding its role (probing its peer)" : "starting: deciding its role (probing its peer, asking the witness)";
        }
        else if (state.PromotionTakenUp)
        {
            reason = PromotingReason(state);
        }
        else if (state.Replica is { Connected: true } replica)
        {
            var heardMs = WholeMilliseconds(replica.SinceLastHeard);
            sinceLastHeardMs = heardMs;
            lag = replica.LagRecords;
            reason = $"standby of primary '{replica.PrimaryId}' (epoch {state.Epoch}), following it: "
                + (heardMs > _options.EffectiveStandbyCheckSilence.TotalMilliseconds ? $"nothing from it for {heardMs} ms"
                : lag is { } behind ? $"{behind} records behind the heads it last reported"
                : "its heads not reported yet on this link");
        }
        else
        {
            reason = state.DefersToPeer
                ? "standby deferring to its peer, which holds more of the log: waiting for it to take over"
                : state.PeerDiverged ? "standby waiting for an operator to promote one node: its log and its peer's have diverged"
                : "standby following no primary (not connected to one, or refused)";
        }

        return CheckAnswer(state.Status, state.Epoch, sinceLastHeardMs, lag, reason);
    }

    /// <summary>The reason of a node whose status is <c>promoting</c>: what its promotion is doing.</summary>
    private string PromotingReason(AdminState state) =>
        state.BecomingPrimary is > 0 and var epoch ? $"promoting: becoming primary at epoch {epoch} (opening the journals, starting the server)"
        : _witness is null ? "promoting: a promotion asked for by the operator is under way"
        : "promoting: a promotion asked for by the operator is under way (asking the witness for the lease)";

    private const string StoppingReason = "stopping: the node is shutting down, or has stopped";

    /// <summary>
    /// A node's <c>status</c>, the one place it is decided: <c>stopping</c> once it is stopping (a primary handing over
    /// included), whatever its role; for a primary, <c>fenced</c> while it steps down (a newer epoch seen, fenced, its
    /// lease lost), else <c>ok</c> once it serves clients (the server's /health says so too) and <c>primary</c> before;
    /// <c>promoting</c> for a node that has taken up a promotion and not finished it (a standby whose promotion, asked
    /// for by the operator or granted by the witness, is under way, or a starting node becoming primary): it serves no
    /// clients yet; <c>fenced</c> for a node that has stepped down; otherwise its role, <c>starting</c> or
    /// <c>standby</c>.
    /// </summary>
    internal static string StatusOf(NodeRole role, bool stopping, bool steppingDown, bool serving, bool becomingPrimary, bool promotionTakenUp) =>
        stopping ? "stopping"
        : role == NodeRole.Primary ? (steppingDown ? "fenced" : serving ? "ok" : "primary")
        : becomingPrimary ? "promoting"
        : role == NodeRole.Fenced ? "fenced"
        : role == NodeRole.Starting ? "starting"
        : promotionTakenUp ? "promoting"
        : "standby";

    // Whole milliseconds, rounded down (as /status's sinceLastHeardMs).
    private static long WholeMilliseconds(TimeSpan t) => (long)t.TotalMilliseconds;

    private static string Milliseconds(TimeSpan t) => t.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>The body of a /primary or /standby check: status, epoch, what it decided by, and the reason (503) if any.</summary>
    private static (int, string, byte[]) CheckAnswer(string status, long epoch, long? sinceLastHeardMs, long? lag, string? reason)
    {
        var json = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            w.WriteString("status", status);
            w.WriteNumber("epoch", epoch);
            if (sinceLastHeardMs is { } heard)
            {
                w.WriteNumber("sinceLastHeardMs", heard);
                if (lag is { } l)
                {
                    w.WriteNumber("lagRecords", l);
                }
                else
                {
                    w.WriteNull("lagRecords");
                }
            }

            if (reason is not null)
            {
                w.WriteString("reason", reason);
            }

            w.WriteEndObject();
        }

        json.Write("\n"u8);
        return (reason is null ? 200 : 503, "application/json", json.WrittenSpan.ToArray());
    }

    private static byte[] RoleHealth(AdminState state) =>
        System.Text.Encoding.UTF8.GetBytes($"{{\"status\":\"{state.Status}\",\"epoch\":{state.Epoch}}}\n");

    // Role, status, epoch, lease and which sections there are, with the standby's link and topics, from one read (they
    // agree); the counters in the sections are read as they are written.
    private void WriteStatus(Utf8JsonWriter w)
    {
        var state = ReadAdminState(withTopics: true);
        AdminStateRead?.Invoke("/status");
        w.WriteStartObject();
        w.WriteString("nodeId", NodeId);
        w.WriteString("role", state.Role.ToString().ToLowerInvariant());
        w.WriteString("status", state.Status); // as /health: ok on the serving primary, else promoting, stopping, fenced…
        w.WriteNumber("epoch", state.Epoch);
        w.WriteNumber("roleForMs", (long)Stopwatch.GetElapsedTime(state.RoleSince).TotalMilliseconds);
        w.WriteString("replicationEndpoint", ReplicationEndPoint.ToString());
        w.WriteString("peer", _options.Peer);
        w.WriteNumber("connectTimeoutMs", WholeMilliseconds(_options.EffectiveConnectTimeout));
        if (_options.Witness is { } witness)
        {
            w.WriteString("witness", witness);
            w.WriteNumber("witnessTimeoutMs", WholeMilliseconds(_options.EffectiveWitnessCallTimeout));
            w.WriteBoolean("leaseValid", state.LeaseValid);
        }
        else
        {
            w.WriteNull("witness");
        }

        if (state.Server is { } server)
        {
            w.WriteString("clientEndpoint", server.EndPoint.ToString());
        }

        if (state.Primary is { Replicator: var replicator, Link: var link } primary)
        {
            w.WriteStartObject("standby");
            w.WriteBoolean("attached", link is not null); // from the link's acceptance, while it is still welcomed
            w.WriteBoolean("confirming", primary.Confirming); // once welcomed: the gate counts it, publishes wait for it
            if (link is not null)
            {
                w.WriteString("nodeId", link.StandbyId);
                w.WriteNumber("sinceLastAckMs", (long)link.SinceLastAck.TotalMilliseconds);
                w.WriteNumber("acksReceived", link.AcksReceived);
                w.WriteNumber("bytesSent", link.BytesSent);
                w.WriteNumber("stateFilesSent", link.StateFilesSent);
                w.WriteNumber("journalerShips", link.JournalerShips);
                w.WriteNumber("journalerAcks", link.JournalerAcks);
                w.WriteNumber("journalerDeferred", link.JournalerDeferred);
                w.WriteStartArray("topics");
                foreach (var (topic, head, received, durable) in primary.Positions)
                {
                    w.WriteStartObject();
                    w.WriteString("topic", topic);
                    w.WriteNumber("head", head);
                    w.WriteNumber("received", received);
                    w.WriteNumber("durable", durable);
                    w.WriteNumber("lagRecords", Math.Max(0, head - received));
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteStartArray("damaged"); // records the standby cannot be sent: the primary's journal is damaged there
            foreach (var d in replicator.Damage)
            {
                w.WriteStartObject();
                w.WriteString("topic", d.Topic);
                w.WriteNumber("offset", d.Offset);
                w.WriteString("segment", d.Segment);
                w.WriteNumber("position", d.Position);
                w.WriteString("reason", d.Reason);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteNumber("maxRetentionHoldBytes", replicator.Options.MaxRetentionHoldBytes);
            w.WriteNumber("retentionPassed", replicator.RetentionPassed);
            if (state.Gate is { } gate)
            {
                w.WriteNumber("degraded", gate.Degraded);
                w.WriteNumber("notReplicated", gate.TimedOut);
                w.WriteBoolean("degradeAllowed", gate.DegradeAllowed);

                // What consumers here are given: up to what the standby holds (gated), or what is durable here.
                w.WriteString("consumerVisibility", gate.ConsumerVisibility switch { AckMode.StandbyReceived => "standby-received", AckMode.StandbyDurable => "standby-durable", _ => "local" });
                w.WriteBoolean("consumerVisibilityGated", gate.VisibilityGated);
            }

            if (state.Lease is { } lease)
            {
                // True from before the first publish confirmed as local without the standby until it has caught up.
                w.WriteBoolean("witnessRecordsBehind", lease.StandbyBehind);
            }

            w.WriteEndObject();
        }

        if (state.Replica is { } replica)
        {
            w.WriteStartObject("replica");
            w.WriteBoolean("connected", replica.Connected);
            w.WriteString("primaryId", replica.PrimaryId);
            w.WriteNumber("sinceLastHeardMs", WholeMilliseconds(replica.SinceLastHeard));
            if (replica.LagRecords is { } lagRecords)
            {
                w.WriteNumber("lagRecords", lagRecords);
            }
            else
            {
                w.WriteNull("lagRecords");
            }

            w.WriteNumber("recordsReceived", replica.Copy.RecordsReceived);
            w.WriteNumber("bytesReceived", replica.Copy.BytesReceived);
            w.WriteStartArray("topics");
            var heads = replica.PrimaryHeads.ToDictionary(h => h.Topic, StringComparer.Ordinal);
            var damage = replica.Copy.PrimaryDamage.ToDictionary(d => d.Topic, StringComparer.Ordinal);
            foreach (var (topic, first, next, durable) in replica.Positions)
            {
                w.WriteStartObject();
                w.WriteString("topic", topic);
                w.WriteNumber("first", first);
                w.WriteNumber("next", next);
                w.WriteNumber("durable", durable);
                if (heads.TryGetValue(topic, out var head) && head.PrimaryHead is { } primaryHead)
                {
                    w.WriteNumber("primaryHead", primaryHead);
                    w.WriteNumber("lagRecords", head.Lag);
                }

                if (damage.TryGetValue(topic, out var damaged))
                {
                    // The primary cannot send this topic's records from there on: its journal is damaged there.
                    w.WriteNumber("primaryDamagedAt", damaged.Offset);
                    w.WriteString("primaryDamage", damaged.Reason);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("truncations");
            foreach (var t in replica.Copy.Truncations)
            {
                w.WriteStringValue(t);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteStartArray("events");
        lock (_events)
        {
            foreach (var e in _events)
            {
                w.WriteStringValue(e);
            }
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }
}
