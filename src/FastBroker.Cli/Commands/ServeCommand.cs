using System.CommandLine;
using System.Diagnostics;
using FastBroker.Server;

namespace FastBroker.Cli.Commands;

/// <summary>
/// <c>fastbroker serve</c>: the broker's main job. Defaults that work on a fresh machine: data in <c>./data</c>, the
/// binary protocol on 127.0.0.1:7400, the admin HTTP endpoint (<c>/metrics</c>, <c>/health</c>) on 127.0.0.1:7401.
/// SIGINT, SIGTERM and SIGHUP shut it down gracefully: stop accepting, drain confirmations, flush and close the journals.
/// </summary>
internal static partial class ServeCommand
{
    public const int DefaultAdminPort = 7401;

    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Data directory (created if missing).", DefaultValueFactory = _ => "data" };
        var host = new Option<string>("--host") { Description = "Address to listen on, for clients, the admin endpoint and replication: an IPv4 address of four numbers, an IPv6 address or a host name, resolved at start: an IP address is bound as given; a host name binds its first IPv4 address, or its first address if it has none (loopback by default; use 0.0.0.0 deliberately).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Protocol port (0 = any free port).", DefaultValueFactory = _ => ServerOptions.DefaultPort };
        var adminPort = new Option<int>("--admin-port") { Description = "Admin HTTP port serving /metrics and /health (-1 = off, 0 = any free port).", DefaultValueFactory = _ => DefaultAdminPort };
        var tokens = new Option<string[]>("--token") { Description = "Accepted auth token (repeatable; none = no authentication). token or token:publishPattern,... to restrict publishing.", AllowMultipleArgumentsPerToken = false };
        var tlsCert = new Option<string?>("--tls-cert") { Description = "PFX certificate file: when given, clients must use TLS." };
        var tlsPassword = new Option<string?>("--tls-password") { Description = "Password of the PFX file." };
        var maxConnections = new Option<int>("--max-connections") { Description = "Most concurrent client connections.", DefaultValueFactory = _ => ServerOptions.Default.MaxConnections };
        var noAutoCreate = new Option<bool>("--no-auto-create") { Description = "Refuse publishes to topics that were not created (UnknownTopic)." };
        var fsync = new Option<bool>("--fsync") { Description = "New topics confirm publishes only after a group commit (fsync) instead of after the page-cache write." };
        var wait = new Option<BrokerWaitStrategy>("--wait") { Description = "Pipeline wait strategy (BusySpin only on machines with cores to spare).", DefaultValueFactory = _ => BrokerWaitStrategy.Hybrid };
        ValueParsers.Choice(wait);
        var completions = new Option<string>("--socket-completions")
        {
            Description = "Where socket reads and writes resume: inline (on the runtime's socket thread: one thread hand-off less per read, the lowest latency), threadpool, or auto (inline unless --tls-cert is given, since TLS handshakes would then hold up every connection). An explicit DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS in the environment wins.",
            DefaultValueFactory = _ => "auto",
        };
        completions.AcceptOnlyFromAmong("auto", "inline", "threadpool");
        var trustSealed = new Option<bool>("--trust-sealed-segments") { Description = "Open journals without re-checking the CRC of every record in sealed segments, only their tails (fast starts with large journals; a promoted standby always does this)." };
        var quiet = new Option<bool>("--quiet") { Description = "Only errors on stderr." };
        var peer = new Option<string?>("--peer") { Description = "Run as one node of a failover pair: the other node's replication endpoint, host:port with an IPv4 address of four numbers (10.0.0.2:7410), an IPv6 address in brackets ([fd00::2]:7410) or a host name (standby-1:7410, resolved again at every connect attempt)." };
        var replicationPort = new Option<int>("--replication-port") { Description = "Replication listener port of this node (pair only).", DefaultValueFactory = _ => Replication.ReplicationOptions.DefaultPort };
        var nodeId = new Option<string?>("--node-id") { Description = "This node's name in the pair (default: node-<replication port>)." };
        var witness = new Option<string?>("--witness") { Description = "Witness endpoint, host:port as for --peer (a host name is resolved again at every connect): enables automatic promotion. Without it only 'fastbroker promote' promotes." };
        var role = new Option<string>("--role") { Description = "Without a witness: the role a node with no history starts in (primary|standby).", DefaultValueFactory = _ => "standby" };
        var acks = new Option<string>("--acks") { Description = "Ack mode of new topics on a pair: local | standby-received | standby-durable.", DefaultValueFactory = _ => "local" };
        var consumerVisibility = new Option<string>("--consumer-visibility") { Description = "Pair primary: what a record must have reached before its subscribers and work-queue members are given it: local (durable here, the default) | standby-received | standby-durable (held by the standby: no consumer acts on a record a failover takes back; one replication round trip more per delivery). While no standby is attached consumers wait, unless --degrade-to-local.", DefaultValueFactory = _ => "local" };
        var ackTimeout = new Option<int>("--ack-timeout-ms") { Description = "How long a standby-mode confirmation waits for the standby before failing with NotReplicated.", DefaultValueFactory = _ => 5000 };
        var degrade = new Option<bool>("--degrade-to-local") { Description = "While no standby is attached, confirm standby-mode publishes as local instead of waiting. With --witness the witness first records the standby behind and promotes no other node until it has caught up ('fastbroker promote --force' overrides)." };
        var heartbeatTimeout = new Option<int>("--heartbeat-timeout-ms") { Description = "Standby: silence after which the primary counts as gone.", DefaultValueFactory = _ => DefaultHeartbeatTimeoutMs };
        var connectTimeout = new Option<int?>("--connect-timeout-ms") { Description = "Standby: how long a connect to the primary waits (its host name resolved and each address tried) before the attempt fails and is retried (default: 1000, or four heartbeat timeouts if shorter); above 0, at most four times --heartbeat-timeout-ms." };
        var witnessTimeout = new Option<int?>("--witness-timeout-ms") { Description = "How long one call to the witness waits (its host name resolved, the connect and the answer) before it counts as unreachable (default: 1000, or the lease, twice the heartbeat timeout, if shorter); above 0, at most twice --heartbeat-timeout-ms; only checked, and used, with --witness." };
        var standbyCheckSilence = new Option<int?>("--standby-check-silence-ms") { Description = "Standby: GET /standby answers 503 once nothing has come from the primary for longer than this (default: three heartbeat intervals, 300 ms; more than one heartbeat interval, 100 ms)." };
        var rebootWait = new Option<int>("--peer-wait-ms") { Description = "How long a node waits for a peer that may hold records it lacks (after its host restarted as primary, or while the peer holds more of the log and has not taken over) before going on alone (0 = do not wait).", DefaultValueFactory = _ => 10_000 };
        var ackPoll = new Option<int>("--ack-poll-us") { Description = "Pair primary: how long its journaler polls for the standby's ACK after shipping records a standby-received confirmation waits for, instead of leaving it to the ack reader's wake-up (0 = never, the default: an opt-in for a primary with a core to spare).", DefaultValueFactory = _ => (int)Replication.ReplicationOptions.DefaultAckPoll.TotalMicroseconds };
        var maxRetentionHold = new Option<long>("--max-retention-hold-mb") { Description = "Pair primary: how many MiB of a topic's segments that its retention limits would delete an attached standby that has fallen behind may keep on the primary's disk; past that, retention passes it and its copy of the topic restarts at the primary's oldest record (0 = never hold retention back).", DefaultValueFactory = _ => Replication.ReplicationOptions.DefaultMaxRetentionHoldBytes >> 20 };
        var producers = CreateProducerFlags();

        acks.AcceptOnlyFromAmong("local", "standby-received", "standby-durable");
        consumerVisibility.AcceptOnlyFromAmong("local", "standby-received", "standby-durable");
        role.AcceptOnlyFromAmong("primary", "standby");
        OptionRules.Port(port, 0);
        OptionRules.Port(adminPort, -1);
        OptionRules.Port(replicationPort, 0);
        OptionRules.AtLeast(maxConnections, 1);
        OptionRules.NotBlank(data, "a data directory");
        OptionRules.NotBlank(host, "an address to listen on (an IP address or a host name)");
        OptionRules.ListenHost(host);
        foreach (var endpoint in new[] { peer, witness })
        {
            OptionRules.Check(endpoint, (result, value) =>
            {
                // ReplicationOptions.Validate's rule and parser (EndpointRule), in the flag's terms: the syntax only; a
                // host name is resolved at connect time.
                if (value is not null && !Replication.ReplicationOptions.IsValidEndpoint(value, out var reason))
                {
                    result.AddError($"{endpoint.Name} '{value}': {reason}");
                }
            });
        }

        OptionRules.Check(tokens, static (result, values) =>
        {
            foreach (var spec in values ?? [])
            {
                if (RefusedToken(spec) is { } reason)
                {
                    result.AddError(reason);
                }
            }
        });
        OptionRules.Check(tlsCert, static (result, path) =>
        {
            if (path is not null && !File.Exists(path))
            {
                result.AddError($"--tls-cert '{path}': no such file (expected a PKCS#12 .pfx file holding the certificate and its private key)");
            }
        });

        OptionRules.Check(maxRetentionHold, static (result, value) =>
        {
            if (value < 0)
            {
                result.AddError("--max-retention-hold-mb cannot be negative");
            }
        });
        var cmd = new Command("serve", "Run the broker: binary protocol over TCP + admin HTTP (/metrics, /health). Ctrl-C, SIGTERM or SIGHUP stops it gracefully.")
        {
            data, host, port, adminPort, tokens, tlsCert, tlsPassword, maxConnections, noAutoCreate, fsync, wait, completions, trustSealed, quiet,
            peer, replicationPort, nodeId, witness, role, acks, consumerVisibility, ackTimeout, degrade, heartbeatTimeout, connectTimeout, witnessTimeout, standbyCheckSilence, rebootWait, ackPoll, maxRetentionHold,
        };
        var topicFlags = CreateTopicFlags();
        foreach (var option in topicFlags.All.Concat(producers.All))
        {
            cmd.Options.Add(option);
        }

        cmd.Validators.Add(result =>
        {
            // Pair options only: serve without --peer does not use them. The witness lease lasts twice the heartbeat
            // timeout, and the witness grants at most MaxLeaseTtl: a node asking for more was refused every lease and
            // stayed Starting.
            // A command validator runs before defaults are applied: an option not given reads as 0, and its default
            // (500 ms) is in range.
            var longest = (long)Replication.ReplicationOptions.MaxLeaseTtl.TotalMilliseconds / 2;
            if (result.GetResult(peer) is null || result.GetResult(heartbeatTimeout) is not { Implicit: false }
                || !OptionRules.TryGetValue(result, heartbeatTimeout, out var timeout))
            {
                return;
            }

            if (timeout <= s_heartbeatIntervalMs)
            {
                result.AddError($"--heartbeat-timeout-ms {timeout}: expected more than {s_heartbeatIntervalMs} (the primary sends a heartbeat every {s_heartbeatIntervalMs} ms)");
            }
            else if (result.GetResult(witness) is not null && timeout > longest)
            {
                result.AddError($"--heartbeat-timeout-ms {timeout}: expected at most {longest} with --witness (the witness lease lasts twice the heartbeat timeout, and the witness grants a lease of at most {2 * longest} ms)");
            }
        });
        cmd.Validators.Add(result =>
        {
            // ReplicationOptions.Validate's rules for these flags, in the flags' terms (its messages name AckTimeout,
            // AckPoll, StandbyCheckSilence, NodeId, PeerWait). Pair options only, and only when given, as above.
            if (result.GetResult(peer) is null)
            {
                return;
            }

            if (Given(result, nodeId, out var id) && !(id is { Length: >= 1 and <= 64 } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
            {
                result.AddError($"--node-id '{id}': expected 1 to 64 characters of letters, digits, '.', '_' or '-'");
            }

            if (Given(result, rebootWait, out var peerWaitMs) && peerWaitMs < 0)
            {
                result.AddError($"--peer-wait-ms {peerWaitMs}: expected at least 0 (0 = do not wait)");
            }

            if (Given(result, ackTimeout, out var ackTimeoutMs) && ackTimeoutMs < 1)
            {
                result.AddError($"--ack-timeout-ms {ackTimeoutMs}: expected at least 1");
            }

            if (Given(result, ackPoll, out var ackPollUs) && ackPollUs is < 0 or > 1_000_000)
            {
                result.AddError($"--ack-poll-us {ackPollUs}: expected 0 to 1000000 (1 s)");
            }

            if (Given(result, standbyCheckSilence, out var silence) && silence is { } silenceMs && silenceMs <= s_heartbeatIntervalMs)
            {
                result.AddError($"--standby-check-silence-ms {silenceMs}: expected more than {s_heartbeatIntervalMs} (the primary sends a heartbeat every {s_heartbeatIntervalMs} ms)");
            }

            // ValidateConnectWaits' rules, against the heartbeat timeout given (or its default).
            var heartbeatMs = Given(result, heartbeatTimeout, out var givenHeartbeat) ? (long)givenHeartbeat : DefaultHeartbeatTimeoutMs;
            if (Given(result, connectTimeout, out var connect) && connect is { } connectMs && (connectMs < 1 || connectMs > 4 * heartbeatMs))
            {
                result.AddError($"--connect-timeout-ms {connectMs}: expected 1 to {4 * heartbeatMs} (four times --heartbeat-timeout-ms: the standby asks the witness for the lease only between connect attempts, so a longer one delays the failover as much; raise --heartbeat-timeout-ms with it)");
            }

            // Without --witness no call is made: the value is not used, so nothing refuses it (as WitnessCallTimeout).
            if (result.GetResult(witness) is not null && Given(result, witnessTimeout, out var call) && call is { } callMs && (callMs < 1 || callMs > 2 * heartbeatMs))
            {
                result.AddError($"--witness-timeout-ms {callMs}: expected 1 to {2 * heartbeatMs} (the witness lease, twice --heartbeat-timeout-ms: a renewal answered after the lease ran out no longer keeps the primary serving; raise --heartbeat-timeout-ms with it)");
            }
        });
        cmd.Validators.Add(result => ValidateProducerFlags(result, producers));
        cmd.Validators.Add(result =>
        {
            var errors = new List<string>();
            BuildTopics(topicFlags, o => result.GetResult(o) is { Implicit: false } r ? r.Tokens.LastOrDefault()?.Value : null, result.GetResult(topicFlags.Topics)?.Tokens.Select(t => t.Value).ToArray() ?? [], fsync: false, AckMode.Local, errors);
            foreach (var error in errors)
            {
                result.AddError(error);
            }
        });
        cmd.SetAction(async (parse, cancellationToken) =>
        {
            var started = Stopwatch.GetTimestamp();
            ConfigureSocketCompletions(parse.GetValue(completions)!, tls: parse.GetValue(tlsCert) is not null);
            var isQuiet = parse.GetValue(quiet);
            var brokerOptions = producers.ApplyTo(BrokerOptions.Default, parse) with
            {
                DataDirectory = parse.GetValue(data)!,
                AutoCreateTopics = !parse.GetValue(noAutoCreate),
                WaitStrategy = parse.GetValue(wait),
                VerifySealedSegmentsOnOpen = !parse.GetValue(trustSealed),
                Log = isQuiet ? null : static line => Console.Error.WriteLine(line),
            };
            var topicErrors = new List<string>();
            var (newTopics, declaredTopics) = BuildTopics(topicFlags, o => o is Option<string?> text ? parse.GetValue(text) : null, parse.GetValue(topicFlags.Topics) ?? [], parse.GetValue(fsync), ParseAcks(parse.GetValue(acks)!), topicErrors);
            brokerOptions = brokerOptions with { DefaultTopicOptions = newTopics, Topics = declaredTopics };
            var serverOptions = ServerOptions.Default with
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                MaxConnections = parse.GetValue(maxConnections),
                Tokens = [.. (parse.GetValue(tokens) ?? []).Select(ParseToken)],
                TlsCertificatePath = parse.GetValue(tlsCert),
                TlsCertificatePassword = parse.GetValue(tlsPassword),
                Log = isQuiet ? null : static line => Console.Error.WriteLine(line),
            };

            if (Refused(() =>
            {
                brokerOptions.Validate();
                serverOptions.Validate();
            }) is { } refused)
            {
                Console.Error.WriteLine($"serve: {refused}");
                return ExitCodes.Usage;
            }

            using var stop = new StopSignal(cancellationToken);

            if (parse.GetValue(peer) is { } peerEndpoint)
            {
                var replicationOptions = new Replication.ReplicationOptions
                {
                    Peer = peerEndpoint,
                    Port = parse.GetValue(replicationPort),
                    Host = serverOptions.Host,
                    NodeId = parse.GetValue(nodeId) ?? $"node-{parse.GetValue(replicationPort)}",
                    DataDirectory = brokerOptions.DataDirectory,
                    Witness = parse.GetValue(witness),
                    InitialRole = parse.GetValue(role) == "primary" ? Replication.NodeRole.Primary : Replication.NodeRole.Standby,
                    AckTimeout = TimeSpan.FromMilliseconds(parse.GetValue(ackTimeout)),
                    DegradeToLocal = parse.GetValue(degrade),
                    ConsumerVisibility = ParseAcks(parse.GetValue(consumerVisibility)!),
                    HeartbeatTimeout = TimeSpan.FromMilliseconds(parse.GetValue(heartbeatTimeout)),
                    ConnectTimeout = parse.GetValue(connectTimeout) is { } connectMs ? TimeSpan.FromMilliseconds(connectMs) : null,
                    WitnessCallTimeout = parse.GetValue(witnessTimeout) is { } witnessMs ? TimeSpan.FromMilliseconds(witnessMs) : null,
                    StandbyCheckSilence = parse.GetValue(standbyCheckSilence) is { } silenceMs ? TimeSpan.FromMilliseconds(silenceMs) : null,
                    PeerWait = TimeSpan.FromMilliseconds(parse.GetValue(rebootWait)),
                    AckPoll = TimeSpan.FromMicroseconds(parse.GetValue(ackPoll)),
                    MaxRetentionHoldBytes = parse.GetValue(maxRetentionHold) is var mb && mb < long.MaxValue >> 20 ? mb << 20 : long.MaxValue,
                    Log = isQuiet ? null : static line => Console.Error.WriteLine(line),
                };
                if (Refused(replicationOptions.Validate) is { } refusedPair)
                {
                    Console.Error.WriteLine($"serve: {refusedPair}");
                    return ExitCodes.Usage;
                }

                return await PairNode.RunAsync(brokerOptions, serverOptions, replicationOptions, parse.GetValue(adminPort), isQuiet, started, stop.Token).ConfigureAwait(false);
            }

            Broker broker;
            try
            {
                broker = await Broker.OpenAsync(brokerOptions, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is BrokerException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"fastbroker: cannot open data directory '{brokerOptions.DataDirectory}': {ex.Message}");
                return 1;
            }

            await using (broker.ConfigureAwait(false))
            {
                foreach (var report in broker.RecoveryReports)
                {
                    Console.Error.WriteLine($"recovery: {report}");
                }

                BrokerServer server;
                try
                {
                    server = await BrokerServer.StartAsync(broker, serverOptions, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ArgumentException or BrokerException or IOException or System.Security.Cryptography.CryptographicException)
                {
                    Console.Error.WriteLine($"fastbroker: cannot listen on {serverOptions.Host}:{serverOptions.Port}: {ex.Message}");
                    return 1;
                }

                await using (server.ConfigureAwait(false))
                {
                    AdminHttpServer? admin = null;
                    var adminPortValue = parse.GetValue(adminPort);
                    if (adminPortValue >= 0)
                    {
                        try
                        {
                            admin = await AdminHttpServer.StartAsync(broker, server, serverOptions.Host, adminPortValue, CancellationToken.None).ConfigureAwait(false);
                        }
                        catch (System.Net.Sockets.SocketException ex)
                        {
                            Console.Error.WriteLine($"fastbroker: cannot listen on admin port {adminPortValue}: {ex.Message}");
                            return 1;
                        }
                    }

                    var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    Console.WriteLine($"fastbroker listening on {server.EndPoint} (data {Path.GetFullPath(brokerOptions.DataDirectory)}{(admin is null ? "" : $", admin http://{admin.EndPoint}/metrics")}) — ready in {ms:F0} ms");
                    Console.Out.Flush();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                    }

                    if (!isQuiet)
                    {
                        Console.Error.WriteLine("fastbroker: shutting down (draining confirmations, flushing journals)");
                    }

                    await server.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                    if (admin is not null)
                    {
                        await admin.DisposeAsync().ConfigureAwait(false);
                    }
                }
            }

            if (!isQuiet)
            {
                Console.Error.WriteLine("fastbroker: stopped");
            }

            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// The runtime reads <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c> once, when the first socket operation
    /// starts its event thread: set here, before any socket exists. Inline, a session's read loop (parse, claim the
    /// ring, publish) runs on that thread as soon as data arrives instead of being queued to a pool worker. Nothing in
    /// the server blocks there: every wait (ring room, writer progress, signals) is asynchronous, and the signals resume
    /// their waiters on the pool.
    /// </summary>
    internal static void ConfigureSocketCompletions(string mode, bool tls)
    {
        const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        if (Environment.GetEnvironmentVariable(Variable) is not null)
        {
            return;
        }

        var inline = mode == "inline" || (mode == "auto" && !tls);
        Environment.SetEnvironmentVariable(Variable, inline ? "1" : "0");
    }

    /// <summary>
    /// Why options built from the command line cannot be used, or null: checked before anything is opened, so such a value
    /// is a usage error (<see cref="ExitCodes.Usage"/>) as for every command, not serve's exit 1 for a data directory or
    /// port it cannot use. Every rule of these options that a flag can break is checked first, when the command line is
    /// parsed, in the flag's terms (<c>--node-id 'a b': expected …</c>); this only catches, in the options' own terms,
    /// a rule added to them later.
    /// </summary>
    private static string? Refused(Action validate)
    {
        try
        {
            validate();
            return null;
        }
        catch (BrokerException ex) when (ex.Code == BrokerErrorCode.InvalidArgument)
        {
            return ex.Message;
        }
        catch (ArgumentException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>The value of <paramref name="option"/> when it was given on the command line and converts; false otherwise.</summary>
    private static bool Given<T>(System.CommandLine.Parsing.CommandResult result, Option<T> option, out T value)
    {
        value = default!;
        return result.GetResult(option) is { Implicit: false } && OptionRules.TryGetValue(result, option, out value!);
    }

    /// <summary>The default of <c>--heartbeat-timeout-ms</c> (that of <c>ReplicationOptions.HeartbeatTimeout</c>).</summary>
    private const int DefaultHeartbeatTimeoutMs = 500;

    /// <summary>The pair's heartbeat interval in ms, which serve does not change.</summary>
    private static readonly long s_heartbeatIntervalMs = (long)Replication.ReplicationOptions.DefaultHeartbeatInterval.TotalMilliseconds;

    /// <summary>A producer age limit given in seconds: 0 = never.</summary>
    private static TimeSpan Seconds(int seconds) => seconds == 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(seconds);

    private static AckMode ParseAcks(string value) => value switch
    {
        "local" => AckMode.Local,
        "standby-received" => AckMode.StandbyReceived,
        "standby-durable" => AckMode.StandbyDurable,
        _ => throw new ArgumentException($"--acks: '{value}' is not local, standby-received or standby-durable"),
    };

    /// <summary>
    /// Why ServerOptions.Validate would refuse the token <paramref name="spec"/> (as <see cref="ParseToken"/> reads it), in
    /// <c>--token</c>'s terms, or null: its messages name no flag ("an access token must not be empty", "invalid access
    /// pattern …").
    /// </summary>
    private static string? RefusedToken(string spec)
    {
        var token = ParseToken(spec);
        if (token.Token.Length == 0)
        {
            return $"--token '{spec}': expected token or token:publishPattern,... with a token that is not empty";
        }

        var bytes = System.Text.Encoding.UTF8.GetByteCount(token.Token);
        if (bytes > Protocol.ProtocolConstants.MaxShortBytesLength)
        {
            return $"--token '{spec[..24]}…' ({bytes} bytes of UTF-8): expected a token of at most {Protocol.ProtocolConstants.MaxShortBytesLength} bytes of UTF-8";
        }

        foreach (var pattern in token.PublishPatterns ?? [])
        {
            if (!TopicPattern.TryParse(pattern, out _, out var why))
            {
                return $"--token '{spec}': publish pattern '{pattern}' is not valid: {why}";
            }
        }

        return null;
    }

    private static AccessToken ParseToken(string spec)
    {
        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            return new AccessToken(spec);
        }

        var patterns = spec[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new AccessToken(spec[..colon], PublishPatterns: patterns);
    }
}
