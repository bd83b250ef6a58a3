using System.Buffers;
using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using FastBroker.Client;
using FastBroker.Protocol;

namespace FastBroker.Cli.Commands;

/// <summary>
/// The client-side commands: <c>pub</c>, <c>sub</c>, <c>topics</c>, <c>groups</c>, <c>stats</c> — each connects to a
/// running server (<c>--server</c>, default 127.0.0.1:7400) with the .NET client.
/// </summary>
internal static partial class ClientCommands
{
    private static readonly Option<string> s_server = ServerOption();
    private static readonly Option<string?> s_token = new("--token") { Description = "Auth token." };

    public static IEnumerable<Command> Create() => [Pub(), Sub(), Admin("topics", "List topics with head offsets and counters.", AdminQuery.ListTopics, "pattern"), Admin("groups", "List work-queue groups with lag and in-flight counts.", AdminQuery.ListGroups, "topic"), Admin("stats", "Server and broker statistics.", AdminQuery.ServerStats, null)];

    private static Option<string> ServerOption()
    {
        var server = new Option<string>("--server", "-s") { Description = "Server endpoint host:port.", DefaultValueFactory = _ => "127.0.0.1:7400" };
        OptionRules.Endpoint(server); // the client's own rule (BrokerClientOptions.Validate): a typo is a usage error, not an exception
        return server;
    }

    private static BrokerClientOptions ClientOptions(ParseResult parse) => WithTls(
        BrokerClientOptions.Default with
        {
            Endpoints = [parse.GetValue(s_server)!],
            AuthToken = parse.GetValue(s_token),
            ClientName = "fastbroker-cli",
            Reconnect = false,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        },
        parse);

    private static Command Pub()
    {
        var topic = new Argument<string>("topic") { Description = "Topic to publish to." };
        var messages = new Argument<string[]>("message") { Description = "Message payloads (UTF-8). None: one message per line of standard input. A payload that starts with '-' goes after '--' (pub t -- -x), except a negative number (pub t -5).", Arity = ArgumentArity.ZeroOrMore };
        var key = new Option<string?>("--key") { Description = "Message key." };
        var headers = new Option<string[]>("--header", "-H") { Description = "Header name=value (repeatable)." };
        var ttl = new Option<int>("--ttl-ms") { Description = "Time to live in milliseconds (0 = none)." };
        OptionRules.Check(ttl, static (result, value) =>
        {
            if (value < 0)
            {
                result.AddError("--ttl-ms cannot be negative");
            }
        });
        var count = new Option<int>("--count", "-n") { Description = "Publish each message this many times (at least 1).", DefaultValueFactory = _ => 1 };
        OptionRules.AtLeast(count, 1);
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only the summary line." };
        var cmd = new Command("pub", "Publish messages and wait for their confirmations (prints topic@offset). Stopped by Ctrl-C, SIGTERM or SIGHUP before all were sent: prints what was confirmed, exits 130, 143 or 129.") { topic, messages, key, headers, ttl, count, quiet, s_server, s_token };
        AddTls(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            if ((OptionRules.OptionLikeValue(parse, topic, "topic") ?? OptionRules.OptionLikeValues(parse, messages, "message")) is { } refused)
            {
                Console.Error.WriteLine(refused);
                return ExitCodes.Usage;
            }

            var t = parse.GetValue(topic)!;
            var publishHeaders = new PublishHeaders();
            foreach (var h in parse.GetValue(headers) ?? [])
            {
                var eq = h.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    Console.Error.WriteLine($"--header '{h}': expected name=value");
                    return ExitCodes.Usage;
                }

                try
                {
                    publishHeaders.Add(h[..eq], h[(eq + 1)..]);
                }
                catch (ArgumentException e)
                {
                    Console.Error.WriteLine($"--header '{h}': {e.Message}"); // a bad or reserved name (fb-expires, fb-producer)
                    return ExitCodes.Usage;
                }
            }

            var options = PublishOptions.Default with
            {
                Key = parse.GetValue(key) is { } k ? Encoding.UTF8.GetBytes(k) : default,
                Headers = publishHeaders.Count > 0 ? publishHeaders : null,
                Ttl = TimeSpan.FromMilliseconds(parse.GetValue(ttl)),
            };
            // Ctrl-C or SIGTERM stops reading and publishing; what was sent is still confirmed and printed. If that was
            // not everything (the input had not ended, copies of --count were left) the exit is 130, 143 or 129, never 0.
            using var stop = new StopSignal(ct, secondSignalKills: true);
            var lines = parse.GetValue(messages) is { Length: > 0 } given ? Given(given) : StdinLines();
            return await RunAsync(parse, async client =>
            {
                var n = parse.GetValue(count);
                var isQuiet = parse.GetValue(quiet);
                var pending = new List<(string Payload, ValueTask<long> Offset)>();
                var published = 0;
                var copiesLeft = 0; // of the payload being published
                try
                {
                    while (!stop.Token.IsCancellationRequested)
                    {
                        if (!lines.TryRead(out var p))
                        {
                            // Nothing more to hand: confirm what was sent before waiting, so that lines typed one by one are
                            // each confirmed (printed) as they are typed, not when the input ends.
                            published += await DrainAsync(pending, t, isQuiet).ConfigureAwait(false);
                            if (!await lines.WaitToReadAsync(stop.Token).ConfigureAwait(false))
                            {
                                break;
                            }

                            continue;
                        }

                        for (copiesLeft = n; copiesLeft > 0 && !stop.Token.IsCancellationRequested; copiesLeft--)
                        {
                            pending.Add((p, client.PublishAsync(t, Encoding.UTF8.GetBytes(p), options, ct)));
                            if (pending.Count >= 1024)
                            {
                                published += await DrainAsync(pending, t, isQuiet).ConfigureAwait(false);
                            }
                        }
                    }
                }
                catch (OperationCanceledException) when (stop.Token.IsCancellationRequested)
                {
                }

                published += await DrainAsync(pending, t, isQuiet).ConfigureAwait(false);
                if (isQuiet)
                {
                    Console.WriteLine($"published {published} message(s) to {t}");
                }

                // Everything was sent when the input has ended (the channel is completed and empty) and no copy is left,
                // whether or not a signal came after that.
                if (copiesLeft > 0 || !lines.Completion.IsCompleted)
                {
                    Console.Error.WriteLine($"pub: stopped by {stop.Signal ?? "cancellation"} after {published} message(s), before all it was asked to publish were sent");
                    return stop.ExitCode;
                }

                return 0;
            }).ConfigureAwait(false);
        });
        return cmd;
    }

    private static async Task<int> DrainAsync(List<(string Payload, ValueTask<long> Offset)> pending, string topic, bool quiet)
    {
        foreach (var (_, offset) in pending)
        {
            var o = await offset.ConfigureAwait(false);
            if (!quiet)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{topic}@{o}"));
            }
        }

        var n = pending.Count;
        pending.Clear();
        return n;
    }

    private static Command Admin(string name, string description, AdminQuery query, string? argumentName)
    {
        var argument = new Argument<string>(argumentName ?? "unused") { Description = $"Optional {argumentName} filter.", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => "" };
        var raw = new Option<bool>("--json") { Description = "Print the server's JSON document as is." };
        var cmd = new Command(name, description) { raw, s_server, s_token };
        AddTls(cmd);
        if (argumentName is not null)
        {
            cmd.Arguments.Add(argument);
        }

        cmd.SetAction(async (parse, ct) =>
        {
            if (argumentName is not null && OptionRules.OptionLikeValue(parse, argument, argumentName) is { } refused)
            {
                Console.Error.WriteLine(refused);
                return ExitCodes.Usage;
            }

            return await RunAsync(parse, async client =>
            {
                var json = await client.AdminAsync(query, argumentName is null ? "" : parse.GetValue(argument) ?? "", ct).ConfigureAwait(false);
                if (parse.GetValue(raw))
                {
                    Console.WriteLine(json);
                    return 0;
                }

                using var doc = JsonDocument.Parse(json);
                PrintJson(doc.RootElement, 0);
                return 0;
            }).ConfigureAwait(false);
        });
        return cmd;
    }

    private static async Task<int> RunAsync(ParseResult parse, Func<BrokerClient, Task<int>> body)
    {
        try
        {
            var client = await BrokerClient.ConnectAsync(ClientOptions(parse)).ConfigureAwait(false);
            await using (client.ConfigureAwait(false))
            {
                return await body(client).ConfigureAwait(false);
            }
        }
        catch (BrokerClientException ex)
        {
            Console.Error.WriteLine($"error {ex.ErrorCode} ({(int)ex.ErrorCode}): {ex.Reason}");
            // InvalidName and InvalidArgument refuse what the command line asked for (a topic or pattern, a start, a
            // TTL): a usage error, not 1, which is sub's "no message within --timeout" (docs/cli.md).
            return ex.ErrorCode is ErrorCode.InvalidName or ErrorCode.InvalidArgument ? ExitCodes.Usage : 1;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or TimeoutException)
        {
            Console.Error.WriteLine($"cannot reach {parse.GetValue(s_server)}: {ex.Message}");
            return 1;
        }
        catch (ArgumentException ex)
        {
            // A value the client refuses before sending (an empty topic or pattern, a key or name too long): the user's
            // input, so one line, not a stack trace, and a usage error as for the other bad arguments.
            // ArgumentException.Message ends with " (Parameter 'topic')": the name goes first instead, as a usage line's.
            var line = ex.Message.Split('\n')[0];
            var named = ex.ParamName is { } p ? $"{p}: {line.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal)}" : line;
            Console.Error.WriteLine($"{parse.CommandResult.Command.Name}: {named}");
            return ExitCodes.Usage;
        }
    }

    /// <summary>Prints <paramref name="m"/> in <paramref name="format"/>; false when standard output's reader has gone.</summary>
    private static bool Print(MessageOutput output, ClientMessage m, string format)
    {
        switch (format)
        {
            case "full":
                var sb = new StringBuilder();
                sb.Append(CultureInfo.InvariantCulture, $"{m.Topic}@{m.Offset} {m.Timestamp:O}");
                if (m.DeliveryCount > 1)
                {
                    sb.Append(CultureInfo.InvariantCulture, $" delivery {m.DeliveryCount}");
                }

                if (!m.Key.IsEmpty)
                {
                    sb.Append(" key=").Append(Text(m.Key.Span));
                }

                if (Expires(m) is { } expires)
                {
                    sb.Append(" expires=").Append(expires);
                }

                foreach (var h in m.Headers)
                {
                    if (h.Key is "fb-producer" or "fb-expires")
                    {
                        continue; // the broker's bookkeeping (idempotence; the TTL, shown above as a time)
                    }

                    sb.Append(CultureInfo.InvariantCulture, $" {h.Key}={Text(h.Value.Span)}");
                }

                sb.Append(' ').Append(Text(m.Payload.Span));
                return output.TryWriteLine(sb.ToString());
            case "json":
                var buffer = new ArrayBufferWriter<byte>(256);
                using (var w = new Utf8JsonWriter(buffer))
                {
                    w.WriteStartObject();
                    w.WriteString("topic", m.Topic);
                    w.WriteNumber("offset", m.Offset);
                    w.WriteString("timestamp", m.Timestamp);
                    w.WriteNumber("deliveryCount", m.DeliveryCount);
                    if (!m.Key.IsEmpty)
                    {
                        w.WriteString("key", Text(m.Key.Span));
                    }

                    if (Expires(m) is { } expiresAt)
                    {
                        w.WriteString("expires", expiresAt);
                    }

                    WriteHeaders(w, m.Headers);
                    w.WriteString("payload", Text(m.Payload.Span));
                    w.WriteEndObject();
                }

                buffer.Write("\n"u8);
                return output.TryWrite(buffer.WrittenSpan);
            default:
                return output.TryWriteLine(Text(m.Payload.Span));
        }
    }

    /// <summary>
    /// The headers as one JSON object, name to text (0x… hex when not UTF-8); a name given twice keeps its first value,
    /// the one <see cref="ClientHeaders.TryGetValue(string, out ReadOnlyMemory{byte})"/> finds. <c>fb-producer</c>, the
    /// broker's idempotence bookkeeping, is left out as in the full format.
    /// </summary>
    private static void WriteHeaders(Utf8JsonWriter w, ClientHeaders headers)
    {
        w.WriteStartObject("headers");
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var h in headers)
        {
            if (h.Key is not ("fb-producer" or "fb-expires") && written.Add(h.Key))
            {
                w.WriteString(h.Key, Text(h.Value.Span));
            }
        }

        w.WriteEndObject();
    }

    /// <summary>When a message published with a TTL expires (its <c>fb-expires</c>, 8-byte Unix ms), ISO 8601 UTC; else null.</summary>
    private static string? Expires(ClientMessage m) =>
        m.Headers.TryGetValue("fb-expires", out var value) && value.Length == 8
            ? DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(BinaryPrimitives.ReadInt64LittleEndian(value.Span), DateTimeOffset.MinValue.ToUnixTimeMilliseconds(), DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())).ToString("O", CultureInfo.InvariantCulture)
            : null;

    private static string Text(ReadOnlySpan<byte> bytes) =>
        System.Text.Unicode.Utf8.IsValid(bytes) ? Encoding.UTF8.GetString(bytes) : "0x" + Convert.ToHexString(bytes);

    private static bool TryParseStart(string text, out SubscribeStart start)
    {
        start = SubscribeStart.Latest;
        switch (text)
        {
            case "latest":
                return true;
            case "earliest":
                start = SubscribeStart.Earliest;
                return true;
            case "committed":
                start = SubscribeStart.Committed(FastBroker.Protocol.StartKind.Earliest);
                return true;
        }

        if (text.StartsWith("offset:", StringComparison.Ordinal) && long.TryParse(text.AsSpan(7), NumberStyles.Integer, CultureInfo.InvariantCulture, out var offset) && offset >= 0)
        {
            start = SubscribeStart.AtOffset(offset);
            return true;
        }

        if (text.StartsWith("time:", StringComparison.Ordinal) && DateTimeOffset.TryParse(text.AsSpan(5), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time))
        {
            start = SubscribeStart.AtTime(time);
            return true;
        }

        return false;
    }

    private static ChannelReader<string> Given(string[] payloads)
    {
        var channel = Channel.CreateUnbounded<string>();
        foreach (var p in payloads)
        {
            channel.Writer.TryWrite(p);
        }

        channel.Writer.Complete();
        return channel.Reader;
    }

    /// <summary>
    /// The lines of standard input, read on a background thread: Console.In.ReadLine blocks and cannot be cancelled, so
    /// a Ctrl-C would otherwise wait for the next line. 1024 lines ahead at most: one drain's worth.
    /// </summary>
    private static ChannelReader<string> StdinLines()
    {
        var channel = Channel.CreateBounded<string>(new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = true });
        var reader = new Thread(() =>
        {
            try
            {
                while (Console.In.ReadLine() is { } line)
                {
                    if (!channel.Writer.TryWrite(line))
                    {
                        channel.Writer.WriteAsync(line).AsTask().GetAwaiter().GetResult();
                    }
                }

                channel.Writer.TryComplete();
            }
            catch (Exception ex)
            {
                channel.Writer.TryComplete(ex); // the publishing loop rethrows it
            }
        })
        {
            IsBackground = true, // left blocked in ReadLine when a signal stops the command
            Name = "fastbroker-stdin",
        };
        reader.Start();
        return channel.Reader;
    }

    private static void PrintJson(JsonElement e, int indent, bool skipFirst = false)
    {
        // A readable, indented rendering of the admin document, YAML-like: objects as "name: value" lines, arrays as
        // items, an object item's first scalar field on its "- " line (a topic's or group's name, once).
        var pad = new string(' ', indent * 2);
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    if (skipFirst)
                    {
                        skipFirst = false;
                        continue;
                    }

                    if (p.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
                    {
                        Console.WriteLine($"{pad}{p.Name}:");
                        PrintJson(p.Value, indent + 1);
                    }
                    else
                    {
                        Console.WriteLine($"{pad}{p.Name}: {Scalar(p.Value)}");
                    }
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.Object)
                    {
                        Console.WriteLine(item.ValueKind == JsonValueKind.Array ? $"{pad}-" : $"{pad}- {Scalar(item)}");
                        if (item.ValueKind == JsonValueKind.Array)
                        {
                            PrintJson(item, indent + 1);
                        }

                        continue;
                    }

                    var first = item.EnumerateObject().FirstOrDefault();
                    var inline = first.Value.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Object or JsonValueKind.Array);
                    Console.WriteLine(inline ? $"{pad}- {first.Name}: {Scalar(first.Value)}" : $"{pad}-");
                    PrintJson(item, indent + 1, skipFirst: inline);
                }

                break;
            default:
                Console.WriteLine($"{pad}{Scalar(e)}");
                break;
        }
    }

    /// <summary>A JSON scalar as JSON spells it: JsonElement.ToString() gives True, False and an empty string for null.</summary>
    private static string Scalar(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        _ => e.ToString(),
    };
}
