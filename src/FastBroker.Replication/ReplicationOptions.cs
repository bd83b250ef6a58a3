using System.Diagnostics.CodeAnalysis;

namespace FastBroker.Replication;

/// <summary>Settings of one node of a failover pair (docs/replication.md).</summary>
public sealed record ReplicationOptions
{
    /// <summary>Default port of the replication link (standby → primary) and of peer probes.</summary>
    public const int DefaultPort = 7410;

    /// <summary>This node's name, unique in the pair (the witness grants its lease by this name).</summary>
    public string NodeId { get; init; } = "node-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// The broker's data directory (journals, state files, and <c>replication/node.state</c>), locked by the node
    /// (<c>broker.lock</c>) from its start to its dispose.
    /// </summary>
    public string DataDirectory { get; init; } = "data";

    /// <summary>
    /// Address the replication listener binds: an IPv4 address of four numbers (<c>0.0.0.0</c> for every interface,
    /// deliberately), an IPv6 address (<c>::</c>, <c>[::1]</c>) or a host name (<see cref="IsValidHost"/>), resolved at
    /// start: a name binds its first IPv4 address, or its first address if it has none, as every listener does
    /// (<c>localhost</c>: 127.0.0.1).
    /// </summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Replication listener port (0 = any free port).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>
    /// The other node's replication endpoint, <see cref="EndpointRule"/>: <c>10.0.0.2:7410</c>, <c>[fd00::2]:7410</c>,
    /// <c>standby-1:7410</c>. A host name is resolved at every connect attempt (a name that has moved is followed at the
    /// next reconnect); one that does not resolve is a failed attempt, logged and retried as for a peer that cannot be
    /// reached.
    /// </summary>
    public required string Peer { get; init; }

    /// <summary>
    /// The witness, <see cref="EndpointRule"/> as for <see cref="Peer"/> (a host name resolved at every connect to it);
    /// null = no witness, so no automatic promotion (manual <c>promote</c> only).
    /// </summary>
    public string? Witness { get; init; }

    /// <summary>
    /// What <see cref="Peer"/> and <see cref="Witness"/> must be (<see cref="IsValidEndpoint(string?)"/>). An IPv4 address
    /// is four decimal numbers: the shorter and other-base forms an IP address parser also takes (<c>10.0.1</c> for
    /// 10.0.0.1, <c>127.1</c>, <c>1</c> for 0.0.0.1, <c>010.0.0.1</c> in octal) are refused, as is an IPv6 address without
    /// brackets (<c>::1:7410</c>: is 7410 the port or part of the address?).
    /// </summary>
    public const string EndpointRule = "host:port with an IPv4 address of four numbers 0 to 255 (10.0.0.2), an IPv6 address in brackets ([fd00::2]) or a host name (letters, digits, '-' and '_' in dot-separated labels) as the host and a port from 1 to 65535";

    /// <summary>
    /// True when <paramref name="endpoint"/> is a <see cref="Peer"/> or <see cref="Witness"/> that <see cref="Validate"/>
    /// accepts (<see cref="EndpointRule"/>). Only the syntax: whether a host name resolves is known at connect time.
    /// </summary>
    public static bool IsValidEndpoint(string? endpoint) => Internal.PeerAddress.TryParse(endpoint, out _);

    /// <summary>
    /// As <see cref="IsValidEndpoint(string?)"/>, with why <paramref name="endpoint"/> is refused: a phrase that starts
    /// with "expected" and names the part at fault (<c>expected an IPv4 address of four numbers 0 to 255 … not '10.0.1'</c>).
    /// </summary>
    public static bool IsValidEndpoint(string? endpoint, [NotNullWhen(false)] out string? reason) => Internal.PeerAddress.TryParse(endpoint, out _, out reason);

    /// <summary>
    /// True when <paramref name="host"/> is a <see cref="Host"/> (an address to bind, without a port) that
    /// <see cref="Validate"/> accepts: an IPv4 address of four numbers 0 to 255, an IPv6 address in brackets or not, or
    /// a host name, as for <see cref="EndpointRule"/>; otherwise false with why ("expected …").
    /// </summary>
    public static bool IsValidHost(string? host, [NotNullWhen(false)] out string? reason) => Internal.PeerAddress.TryParseHost(host, out _, out reason);

    /// <summary>
    /// Without a witness, the role a node with no history takes when its peer is not a primary: the operator names
    /// one node primary and the other standby. With a witness, whoever gets the lease first is primary.
    /// </summary>
    public NodeRole InitialRole { get; init; } = NodeRole.Standby;

    /// <summary>How often the primary sends a heartbeat (and the state files the standby lacks) when idle; at most <see cref="MaxHeartbeatInterval"/>.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = DefaultHeartbeatInterval;

    /// <summary>The default <see cref="HeartbeatInterval"/>: 100 ms (<c>fastbroker serve</c> uses it).</summary>
    public static TimeSpan DefaultHeartbeatInterval { get; } = TimeSpan.FromMilliseconds(100);

    /// <summary>A standby that has heard nothing for this long considers the primary gone (and, with a witness, asks for the lease).</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// <c>GET /standby</c> fails on a standby that has heard nothing from its primary for longer than this. Default
    /// (null): three heartbeat intervals (300 ms by default), two heartbeats missed in a row. It must exceed
    /// <see cref="HeartbeatInterval"/>, or an idle primary's standby would fail the check between two heartbeats. The
    /// link itself stays up until <see cref="HeartbeatTimeout"/> (raised to seconds where a loaded machine stalls
    /// nodes), but a load balancer should not count a standby as a current copy meanwhile: a primary that froze looks
    /// exactly like this. Raise it where the primary's heartbeats are often late (a loaded host) and the check should
    /// not flap.
    /// </summary>
    public TimeSpan? StandbyCheckSilence { get; init; }

    /// <summary><see cref="StandbyCheckSilence"/>, or three heartbeat intervals when it is not set.</summary>
    internal TimeSpan EffectiveStandbyCheckSilence => StandbyCheckSilence ?? (HeartbeatInterval * 3);

    /// <summary>
    /// The primary's witness lease, <see cref="MinLeaseTtl"/> (50 ms) to <see cref="MaxLeaseTtl"/> (60 s); renewed every
    /// quarter of it. Default: twice <see cref="HeartbeatTimeout"/>, so with a <see cref="Witness"/> and no lease TTL the
    /// heartbeat timeout is 25 ms to 30 s.
    /// </summary>
    public TimeSpan? LeaseTtl { get; init; }

    /// <summary>The shortest <see cref="LeaseTtl"/>: below 50 ms a renewal every quarter of it is faster than a loaded machine schedules it.</summary>
    public static TimeSpan MinLeaseTtl { get; } = TimeSpan.FromMilliseconds(WitnessProtocol.MinTtlMs);

    /// <summary>The longest <see cref="LeaseTtl"/>: 60 s, the longest lease the witness protocol grants.</summary>
    public static TimeSpan MaxLeaseTtl { get; } = TimeSpan.FromMilliseconds(WitnessProtocol.MaxTtlMs);

    /// <summary>
    /// The longest <see cref="HeartbeatInterval"/>: <see cref="int.MaxValue"/> ms (about 24.8 days). The nodes wait up to one
    /// interval at a time, and a timed wait longer than the runtime takes (on .NET 10, <c>Task.Delay</c> and timers stop
    /// at about 49.7 days; a millisecond count in an int at this) threw from the node's loops at every turn.
    /// </summary>
    public static TimeSpan MaxHeartbeatInterval { get; } = TimeSpan.FromMilliseconds(int.MaxValue);

    /// <summary>
    /// How long a standby-mode confirmation waits for the standby before failing with <c>NotReplicated</c> (checked
    /// every fiftieth of it, between the broker's <c>TimerResolution</c> and 50 ms).
    /// </summary>
    public TimeSpan AckTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After the primary's journaler ships records a standby-received confirmation waits for, it polls for the
    /// standby's ACK itself for up to this long (yielding its CPU between looks) while no new publish arrives, rather
    /// than leave it to a blocked ack reader whose wake-up adds to every such confirmation. Zero (the default): never.
    /// An opt-in for a primary with a core to spare: on a 2-vCPU machine running both nodes and the load it made
    /// standby-received confirmations slower, not faster (perf-reports/replication.md).
    /// </summary>
    public TimeSpan AckPoll { get; init; } = DefaultAckPoll;

    /// <summary>The default <see cref="AckPoll"/>: off (see there).</summary>
    public static TimeSpan DefaultAckPoll { get; } = TimeSpan.Zero;

    /// <summary>
    /// Tests only: when the standby's frames arrive, the ack reader leaves them this long to a journaler that polls
    /// for them (<see cref="AckPoll"/>) before it reads them itself. Which thread reads an ACK first is otherwise a
    /// race that either side may win every time, depending on the machine's scheduling.
    /// </summary>
    internal TimeSpan AckReaderDefersFor { get; init; }

    /// <summary>
    /// How long <c>POST /promote</c> waits for the promotion before it answers 409 (withdrawn, never taken up) or 202
    /// (under way); 30 s, within the 35 s a <c>fastbroker promote</c> waits for the answer. Shorter in tests only.
    /// </summary>
    internal TimeSpan PromoteAnswerTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The most an attached standby that has fallen behind may hold back the primary's retention of one topic: bytes of
    /// sealed segments that the topic's retention limits would delete but the replicator has not sent yet. Within it,
    /// the standby catches up from where it is (a standby a little behind never restarts its copy); past it, retention
    /// deletes them all the same, the link ends with a log line naming the topic and offsets, and the standby's copy of
    /// that topic restarts at the primary's oldest retained record (counted in <c>/status</c> as
    /// <c>standby.retentionPassed</c>). Default 1 GiB: 17 s of lag behind a topic written at 60 MiB/s, nearly two
    /// minutes at 10 MiB/s, so a standby that stalls briefly (a GC, a slow disk, a busy host) keeps its copy, while a
    /// frozen one in local ack mode (producers do not wait for it) can add at most 1 GiB per topic with retention to the
    /// primary's disk instead of filling it. Size the disk for it: each topic's retention plus this. Topics without retention limits never delete, so this bound does not apply to them.
    /// <see cref="long.MaxValue"/>: no bound (the standby holds retention for as long as it is attached). 0: the standby
    /// never holds retention back.
    /// </summary>
    public long MaxRetentionHoldBytes { get; init; } = DefaultMaxRetentionHoldBytes;

    /// <summary>The default <see cref="MaxRetentionHoldBytes"/>: 1 GiB (see there).</summary>
    public const long DefaultMaxRetentionHoldBytes = 1L << 30;

    /// <summary>
    /// While no standby is attached, confirm standby-mode publishes as local instead of waiting (counted). With a
    /// <see cref="Witness"/>, only once the witness has recorded the standby behind: it then promotes no other node until
    /// the standby has caught up, so an automatic failover never loses these confirmations (docs/replication.md).
    /// </summary>
    public bool DegradeToLocal { get; init; }

    /// <summary>
    /// What a record of a persistent topic must have reached before subscriptions and work-queue members on the primary
    /// are given it (Kafka's high watermark), in the ack modes' terms: <see cref="AckMode.Local"/> (the default) once
    /// durable on the primary, as on a single broker; <see cref="AckMode.StandbyReceived"/> once the standby has
    /// acknowledged receiving it, <see cref="AckMode.StandbyDurable"/> once it has flushed it, so no consumer on the
    /// primary acts on a record a failover can take back. Costs each delivery one replication round trip (and, for
    /// standby-durable, the standby's flush). While no standby is attached consumers wait, as standby-mode producers do,
    /// unless <see cref="DegradeToLocal"/>: then visibility degrades to local with the confirmations (with a
    /// <see cref="Witness"/>, once the witness records the standby behind). Node-wide: every persistent topic alike.
    /// </summary>
    public AckMode ConsumerVisibility { get; init; } = AckMode.Local;

    /// <summary>
    /// How long a node waits for a peer that may hold records it lacks: as a primary whose host restarted since (its
    /// page cache, and any journal tail not yet flushed, is gone; the peer may hold those records as standby-durable
    /// confirmations and would lose them to the cut when it rejoined), for a deciding peer to report its journals'
    /// heads, and for a peer that holds more of the log to take over before taking the lease itself. Zero = do not
    /// wait.
    /// </summary>
    public TimeSpan PeerWait { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the standby's connect to its primary waits (the host name resolved and each of its addresses tried
    /// included) before the attempt fails and is retried. Default (null): 1 s (<see cref="DefaultConnectTimeout"/>), or
    /// four heartbeat timeouts if that is shorter. Above 0, at most four <see cref="HeartbeatTimeout"/>s (the silence after
    /// which the primary detaches a standby): a primary whose host vanished without a trace (no RST) holds every attempt
    /// for the whole timeout, and the standby asks the witness for the lease only between attempts, so a longer one
    /// delays the automatic failover by as much. Raise it (and the heartbeat timeout with it) where a connect takes
    /// longer than a second: a WAN link, a loaded host.
    /// </summary>
    public TimeSpan? ConnectTimeout { get; init; }

    /// <summary>The default <see cref="ConnectTimeout"/>: 1 s (see there).</summary>
    public static TimeSpan DefaultConnectTimeout { get; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long one call to the <see cref="Witness"/> (resolving its name, connecting, asking and reading the answer)
    /// waits before it counts as unreachable. Default (null): 1 s (<see cref="WitnessClient.DefaultCallTimeout"/>), or
    /// the lease TTL if that is shorter. Above 0, at most the lease TTL (<see cref="LeaseTtl"/>, by default twice
    /// <see cref="HeartbeatTimeout"/>): a renewal answered after the lease ran out no longer keeps the primary serving,
    /// and a standby asking for the lease waits this long before it tries again. Raise it (with the heartbeat timeout or
    /// the lease TTL) where the witness is a slow round trip away. Checked only with a <see cref="Witness"/>: without one
    /// no call is made, and a node is not refused for a setting it does not use.
    /// </summary>
    public TimeSpan? WitnessCallTimeout { get; init; }

    /// <summary>Receives one line per role change, link event and truncation (null = silent).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// The primary detaches a standby it has heard nothing from (no ack, no heartbeat answer) for this long: four
    /// heartbeat timeouts, so that a standby busy writing a large catch-up burst is not taken for a frozen one.
    /// </summary>
    internal TimeSpan StandbySilenceTimeout => HeartbeatTimeout * 4;

    internal TimeSpan EffectiveLeaseTtl => LeaseTtl ?? (HeartbeatTimeout * 2);

    /// <summary><see cref="ConnectTimeout"/>, or 1 s or four heartbeat timeouts, whichever is shorter, when it is not set.</summary>
    internal TimeSpan EffectiveConnectTimeout => ConnectTimeout ?? Min(DefaultConnectTimeout, StandbySilenceTimeout);

    /// <summary><see cref="WitnessCallTimeout"/>, or 1 s or the lease TTL, whichever is shorter, when it is not set.</summary>
    internal TimeSpan EffectiveWitnessCallTimeout => WitnessCallTimeout ?? Min(WitnessClient.DefaultCallTimeout, EffectiveLeaseTtl);

    /// <summary>
    /// How long a probe of the peer waits for its answer: <see cref="ProbeTimeoutLimit"/> (500 ms), or the heartbeat
    /// timeout if that is shorter (a peer silent for that long counts as gone anyway).
    /// </summary>
    internal TimeSpan ProbeTimeout => HeartbeatTimeout < ProbeTimeoutLimit ? HeartbeatTimeout : ProbeTimeoutLimit;

    /// <summary>Tests only: the longest a probe of the peer waits (500 ms), raised where a test acts while one waits.</summary>
    internal TimeSpan ProbeTimeoutLimit { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Tests only: called by the standby loop with the reason each time a link attempt ends. What it throws is an
    /// unexpected failure of the loop (the supervisor logs it and pauses a heartbeat interval), which a test needs and
    /// the code, once it handles every failure it knows of, no longer gives it.
    /// </summary>
    internal Action<string>? LinkEnded { get; init; }

    /// <summary>
    /// Tests only: the clock of the log lines a repeating fault could flood the log with (the standby's damaged state
    /// copies, its link-down reasons, the loop's unexpected failures: the first at once, then at most one per 10 s with
    /// the count of those not logged).
    /// </summary>
    internal TimeProvider LogClock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Tests only: called when a standby has taken up a manual promotion, before it asks the witness for the lease. What
    /// it throws is a failure of the promotion's epoch step, which the code, once the witness client answers every answer
    /// it cannot use as an error, no longer gives a test.
    /// </summary>
    internal Action? PromotionEpochStep { get; init; }

    /// <summary>
    /// A standby about to ask the witness for the lease probes its silent primary for at most two heartbeat intervals
    /// (200 ms by default): the witness decides, the probe only spares it a request when the primary answers. A frozen
    /// primary's kernel still accepts the probe's connection, so every probe of it waits out the whole timeout.
    /// </summary>
    internal TimeSpan TakeoverProbeTimeout => HeartbeatInterval * 2 < ProbeTimeout ? HeartbeatInterval * 2 : ProbeTimeout;

    /// <summary>Throws <see cref="ArgumentException"/> for inconsistent settings.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(NodeId) || NodeId.Length > 64 || !NodeId.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            throw new ArgumentException("NodeId must be 1-64 characters of letters, digits, '.', '_' or '-'.", nameof(NodeId));
        }

        if (!IsValidHost(Host, out var hostReason))
        {
            throw new ArgumentException($"Host '{Host}' is not an address to bind: {hostReason}.", nameof(Host));
        }

        _ = Internal.PeerAddress.Parse(Peer, nameof(Peer));
        if (Witness is not null)
        {
            _ = Internal.PeerAddress.Parse(Witness, nameof(Witness));
        }

        if (HeartbeatInterval <= TimeSpan.Zero || HeartbeatTimeout <= HeartbeatInterval)
        {
            throw new ArgumentException("HeartbeatTimeout must exceed HeartbeatInterval (both positive).", nameof(HeartbeatTimeout));
        }

        if (EffectiveStandbyCheckSilence <= HeartbeatInterval)
        {
            throw new ArgumentException($"StandbyCheckSilence ({EffectiveStandbyCheckSilence.TotalMilliseconds:0.###} ms) must exceed HeartbeatInterval ({HeartbeatInterval.TotalMilliseconds:0.###} ms).", nameof(StandbyCheckSilence));
        }

        ValidateWaits();
        ValidateConnectWaits();
        if (AckTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"AckTimeout ({AckTimeout.TotalMilliseconds:0.###} ms) must be positive.", nameof(AckTimeout));
        }

        if (!Enum.IsDefined(ConsumerVisibility))
        {
            throw new ArgumentException($"ConsumerVisibility ({(int)ConsumerVisibility}) is not an ack mode (Local, StandbyReceived or StandbyDurable).", nameof(ConsumerVisibility));
        }

        if (AckPoll < TimeSpan.Zero || AckPoll > TimeSpan.FromSeconds(1))
        {
            throw new ArgumentException("AckPoll must be between 0 and 1 s.", nameof(AckPoll));
        }

        if (MaxRetentionHoldBytes < 0)
        {
            throw new ArgumentException("MaxRetentionHoldBytes cannot be negative (long.MaxValue: no bound).", nameof(MaxRetentionHoldBytes));
        }

        if (PeerWait < TimeSpan.Zero)
        {
            throw new ArgumentException("PeerWait cannot be negative.", nameof(PeerWait));
        }

        if (InitialRole is not (NodeRole.Primary or NodeRole.Standby))
        {
            throw new ArgumentException("InitialRole is Primary or Standby.", nameof(InitialRole));
        }
    }

    /// <summary>
    /// The limits of waits derived from other settings, so that settings the node starts with are ones it can run with:
    /// a lease TTL the witness grants (a node asking for another one failed every attempt and never left Starting), and a
    /// heartbeat interval the runtime can wait for.
    /// </summary>
    private void ValidateWaits()
    {
        if (HeartbeatInterval > MaxHeartbeatInterval)
        {
            throw new ArgumentException(
                $"HeartbeatInterval ({HeartbeatInterval.TotalMilliseconds:0.###} ms) must be at most {MaxHeartbeatInterval.TotalMilliseconds:0} ms (about 24.8 days): the nodes wait up to one interval at a time, and the runtime's timed waits may be no longer.",
                nameof(HeartbeatInterval));
        }

        var min = MinLeaseTtl.TotalMilliseconds;
        var max = MaxLeaseTtl.TotalMilliseconds;
        if (LeaseTtl is { } ttl && (ttl < MinLeaseTtl || ttl > MaxLeaseTtl))
        {
            throw new ArgumentException(
                $"LeaseTtl ({ttl.TotalMilliseconds:0.###} ms) must be {min:0} to {max:0} ms: the witness grants a lease of at most {max:0} ms, and one shorter than {min:0} ms would be renewed (every quarter of it) faster than a loaded machine schedules the renewals.",
                nameof(LeaseTtl));
        }

        if (Witness is not null && LeaseTtl is null && (EffectiveLeaseTtl < MinLeaseTtl || EffectiveLeaseTtl > MaxLeaseTtl))
        {
            throw new ArgumentException(
                $"HeartbeatTimeout ({HeartbeatTimeout.TotalMilliseconds:0.###} ms) must be {min / 2:0} to {max / 2:0} ms with a Witness and no LeaseTtl: the witness lease then lasts twice the heartbeat timeout ({EffectiveLeaseTtl.TotalMilliseconds:0.###} ms here), and the witness grants a lease of {min:0} to {max:0} ms. Set LeaseTtl for a heartbeat timeout outside that range.",
                nameof(HeartbeatTimeout));
        }
    }

    /// <summary>The connect and witness-call timeouts (see each): positive, and no longer than what they wait within.</summary>
    private void ValidateConnectWaits()
    {
        if (ConnectTimeout is { } connect && (connect <= TimeSpan.Zero || connect > StandbySilenceTimeout))
        {
            throw new ArgumentException(
                $"ConnectTimeout ({connect.TotalMilliseconds:0.###} ms) must be above 0 and at most four HeartbeatTimeouts ({StandbySilenceTimeout.TotalMilliseconds:0.###} ms): the standby asks the witness for the lease only between connect attempts, so a longer one delays the failover from a primary whose host vanished by as much. Raise HeartbeatTimeout with it.",
                nameof(ConnectTimeout));
        }

        // Without a witness the timeout is never used (no witness client, no witnessTimeoutMs in /status): a value
        // given for it, with a heartbeat timeout that would make it too long for a lease, refuses nothing.
        if (Witness is not null && WitnessCallTimeout is { } call && (call <= TimeSpan.Zero || call > EffectiveLeaseTtl))
        {
            throw new ArgumentException(
                $"WitnessCallTimeout ({call.TotalMilliseconds:0.###} ms) must be above 0 and at most the lease TTL ({EffectiveLeaseTtl.TotalMilliseconds:0.###} ms{(LeaseTtl is null ? ", twice HeartbeatTimeout" : "")}): a renewal answered after the lease ran out no longer keeps the primary serving. Raise {(LeaseTtl is null ? "HeartbeatTimeout" : "LeaseTtl")} with it.",
                nameof(WitnessCallTimeout));
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
