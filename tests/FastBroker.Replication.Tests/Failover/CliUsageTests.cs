using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// A command line that cannot be used exits 64 (EX_USAGE) with the reason on stderr, for every command, so it never
/// reads as one of a command's results (journal verify's 1 corrupt, 2 damaged tail, 3 nothing to check); counts
/// below what their help allows are refused instead of being taken for something else; journal dump of a path with
/// no journal exits 3 as verify does; and the top-level help writes optional arguments in brackets.
/// </summary>
public class CliUsageTests
{
    [Fact]
    public async Task Unusable_command_lines_exit_64_and_optional_arguments_show_as_optional()
    {
        using var dir = new TempDirectory("fastbroker-cli-usage");
        var journal = Cli.WriteOneRecordJournal(dir);

        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);

        (string[] Args, int Exit)[] cases =
        [
            (["pub", "counted", "x", "--count", "0", "--server", server], 64), // published once
            (["pub", "counted", "x", "--count", "-3", "--server", server], 64), // published once
            (["sub", "counted", "--from", "earliest", "--count", "-1", "--server", server], 64), // never stopped
            (["sub", "counted", "--timeout", "-1", "--server", server], 64), // waited forever
            (["journal", "dump", journal, "--from-offset", "-1"], 64), // printed nothing, exit 0
            (["journal", "dump", journal, "--count", "-5"], 64), // printed nothing, exit 0
            (["journal", "dump", dir.Combine("topics", "orders")], 3), // no journal here: printed nothing, exit 0
            (["journal", "dump", dir.Combine("no-such-directory")], 3),
            (["journal", "verify"], 64), // 1: "corrupt"
            (["journal", "verify", journal, "--no-such-option"], 64),
            (["stats", "--no-such-option", "--server", server], 64),
        ];
        var failures = new List<string>();
        foreach (var (args, exit) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != exit || outcome.HasStackTrace || outcome.Errors.Trim().Length == 0)
            {
                failures.Add($"expected exit {exit}: {outcome.Describe(args)}");
            }
        }

        var dumped = await CliOutcome.RunAsync(["journal", "dump", journal, "--count", "0"]);
        if (dumped.ExitCode != 0 || dumped.Output.Length > 0)
        {
            failures.Add($"journal dump --count 0: exit {dumped.ExitCode}, printed [{dumped.Output}] (expected nothing, exit 0)");
        }

        var topics = string.Join('\n', await Cli.RunAsync("topics", "--json", "--server", server));
        if (topics.Contains("\"counted\"", StringComparison.Ordinal))
        {
            failures.Add($"a refused pub published: {topics}");
        }

        var help = await Cli.RunAsync("--help");
        foreach (var row in new[] { "topics [pattern]", "groups [topic]", "pub <topic> [message]", "sub <pattern>" })
        {
            if (!help.Any(l => l.TrimStart().StartsWith(row + " ", StringComparison.Ordinal)))
            {
                failures.Add($"the help has no row '{row}':\n{string.Join('\n', help)}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    /// <summary>
    /// An option the command does not have is not taken for its topic or pattern (System.CommandLine hands such a token
    /// to an argument with room for it): topics and groups listed nothing with exit 0, pub published to a topic named
    /// after the option, sub waited on it. A name that starts with '-' is still reachable after <c>--</c>.
    /// </summary>
    [Fact]
    public async Task An_unknown_option_is_refused_not_taken_for_the_topic_or_pattern()
    {
        using var dir = new TempDirectory("fastbroker-cli-option-like");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);
        await Cli.RunAsync("pub", "--server", server, "--", "-dashed", "x");

        string[][] cases =
        [
            ["topics", "--no-such-option", "--server", server], // listed nothing, exit 0
            ["topics", "--json", "-x", "--server", server],
            ["groups", "--no-such-option", "--server", server], // listed nothing, exit 0
            ["pub", "--no-such-option", "x", "--server", server], // published to the topic '--no-such-option'
            ["sub", "--no-such-option", "--timeout", "1", "--server", server], // exit 1: no message within --timeout
        ];
        var failures = new List<string>();
        foreach (var args in cases)
        {
            var outcome = await CliOutcome.RunAsync(args);
            var option = args.First(a => a.StartsWith('-') && a is not ("--json" or "--timeout" or "--server"));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || !outcome.Errors.Contains($"unknown option '{option}'", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, naming the option: {outcome.Describe(args)}");
            }
        }

        var topics = string.Join('\n', await Cli.RunAsync("topics", "--json", "--server", server));
        if (topics.Contains("no-such-option", StringComparison.Ordinal))
        {
            failures.Add($"a refused pub published: {topics}");
        }

        // After '--' a name that starts with '-' is the topic or pattern.
        var dashed = string.Join('\n', await Cli.RunAsync("topics", "--json", "--server", server, "--", "-dashed"));
        if (!dashed.Contains("\"-dashed\"", StringComparison.Ordinal))
        {
            failures.Add($"topics -- -dashed: {dashed}");
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    /// <summary>
    /// A mistyped option in the payload position of <c>pub</c> (<c>pub t --bogus</c>, <c>pub t hello -x</c>) is a usage
    /// error that says to put a payload starting with '-' after <c>--</c>, and nothing of that command line is
    /// published (it published '--bogus' and exited 0). After <c>--</c> such payloads are published, and a negative
    /// number ('-' then a digit) is a payload without it.
    /// </summary>
    [Fact]
    public async Task A_payload_that_looks_like_an_option_is_refused_unless_it_follows_double_dash()
    {
        using var dir = new TempDirectory("fastbroker-cli-option-payload");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);

        string[][] refused =
        [
            ["pub", "payloads", "--bogus", "--server", server], // published '--bogus', exit 0
            ["pub", "payloads", "hello", "-x", "--server", server], // published 'hello' and '-x'
            ["pub", "payloads", "--server", server, "--bogus=1", "-q"],
            ["pub", "payloads", "-", "--server", server], // not standard input: a payload '-' goes after '--' too
        ];
        var failures = new List<string>();
        foreach (var args in refused)
        {
            var outcome = await CliOutcome.RunAsync(args);
            var token = args.Skip(2).First(a => a.StartsWith('-') && a is not ("--server" or "-q"));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace
                || !outcome.Errors.Contains($"'{token}'", StringComparison.Ordinal)
                || !outcome.Errors.Contains("after '--'", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, naming '{token}' and '--': {outcome.Describe(args)}");
            }
        }

        // Accepted: negative numbers as they are, anything after '--' (also what looks like this command's options).
        await Cli.RunAsync("pub", "payloads", "-5", "-1.5", "--server", server);
        await Cli.RunAsync("pub", "payloads", "--server", server, "--", "--bogus", "-x", "-", "-q");
        var printed = await CliOutcome.RunAsync(["sub", "payloads", "--from", "earliest", "--count", "6", "--timeout", "60", "--server", server]);
        if (printed.ExitCode != 0 || printed.Output != "-5\n-1.5\n--bogus\n-x\n-\n-q")
        {
            failures.Add($"sub payloads from earliest: exit {printed.ExitCode}, printed [{printed.Output.Replace('\n', ' ')}] (expected -5 -1.5 --bogus -x - -q, nothing refused before them)");
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    /// <summary>
    /// A value that starts with '@' is taken as it is, not as the name of a response file whose words replace it
    /// (System.CommandLine's default): <c>pub notes @todo</c> published the words of a file named todo, options in it
    /// included, and <c>pub chat '@alice hi'</c> was a usage error (no file 'alice hi').
    /// </summary>
    [Fact]
    public async Task A_value_that_starts_with_at_is_a_value_not_a_response_file()
    {
        using var dir = new TempDirectory("fastbroker-cli-at");
        var port = FreePort.Next();
        var server = Cli.Address(port);
        using var serve = await Cli.ServeAsync(dir.Combine("data"), port);
        var file = dir.Combine("todo");
        File.WriteAllText(file, "secret words\n--count 3\n");

        var failures = new List<string>();
        foreach (var args in new[] { new[] { "pub", "notes", "@" + file, "--server", server }, ["pub", "notes", "@alice hi", "--server", server] })
        {
            var outcome = await CliOutcome.RunAsync(args);
            if (outcome.ExitCode != 0 || outcome.Output.Split('\n').Length != 1)
            {
                failures.Add($"expected one message published, exit 0: {outcome.Describe(args)}, printed [{outcome.Output.Replace('\n', ' ')}]");
            }
        }

        var printed = await CliOutcome.RunAsync(["sub", "notes", "--from", "earliest", "--count", "2", "--timeout", "60", "--server", server]);
        if (printed.ExitCode != 0 || printed.Output != $"@{file}\n@alice hi")
        {
            failures.Add($"sub notes from earliest: exit {printed.ExitCode}, printed [{printed.Output.Replace('\n', ' ')}] (expected @{file} and @alice hi)");
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }

    /// <summary>
    /// A <c>serve</c> or <c>witness</c> option value the server refuses (<c>--max-connections 0</c>, an empty or blank
    /// <c>--host</c> or <c>--data</c>, a <c>--tls-cert</c> file that does not exist, an empty, too long or badly
    /// patterned <c>--token</c>, a pair's negative <c>--ack-timeout-ms</c> or <c>--peer-wait-ms</c>,
    /// <c>--heartbeat-timeout-ms 0</c>, <c>--ack-poll-us -1</c>, a <c>--consumer-visibility</c> that is not an ack mode, a <c>--standby-check-silence-ms</c> not above the
    /// heartbeat interval, a <c>--node-id</c> a node cannot have, a <c>--peer</c> or <c>--witness</c> that is not
    /// host:port with an IP address or a host name, a <c>--connect-timeout-ms</c> or <c>--witness-timeout-ms</c> out of
    /// its range) is a usage error, exit 64, whose reason names the flag, the value and the rule,
    /// as for every command: it exited 1 ("cannot listen", "cannot start the pair node", the witness's "cannot start"),
    /// serve's exit for a data directory or port it cannot use, or crashed (a <c>--peer</c> host name: an unhandled
    /// FormatException). The reason is checked, not only the code: an option serve does not know exits 64 too
    /// ("Unrecognized command or argument"), and a reason in the library's terms (<c>AckTimeout (-1 ms) must be
    /// positive</c>, <c>NodeId must be 1-64 characters… (Parameter 'NodeId')</c>, <c>Host is required</c>) does not tell
    /// the user which flag to change.
    /// </summary>
    [Fact]
    public async Task Serve_option_values_the_server_refuses_exit_64()
    {
        using var dir = new TempDirectory("fastbroker-cli-serve-usage");
        string[] anywhere = ["serve", "--port", "0", "--admin-port", "-1", "--quiet"];
        string[] serve = [.. anywhere, "--data", dir.Combine("data")];
        string[] pairWaiting = [.. serve, "--peer", "127.0.0.1:1", "--replication-port", "0", "--role", "primary"];
        string[] pair = [.. pairWaiting, "--peer-wait-ms", "0"];
        string[] witness = ["witness", "--port", "0", "--quiet"];
        var longToken = new string('t', 65_536);
        (string[] Args, string Reason)[] cases =
        [
            ([.. serve, "--max-connections", "0"], "--max-connections 0: expected at least 1"),
            ([.. serve, "--token", ":orders.*"], "--token ':orders.*': expected token or token:publishPattern,... with a token that is not empty"),
            ([.. pair, "--ack-timeout-ms", "-1"], "--ack-timeout-ms -1: expected at least 1"),
            ([.. pair, "--heartbeat-timeout-ms", "0"], "--heartbeat-timeout-ms 0: expected more than 100 (the primary sends a heartbeat every 100 ms)"),
            ([.. pair, "--ack-poll-us", "-1"], "--ack-poll-us -1: expected 0 to 1000000 (1 s)"),
            ([.. pair, "--ack-poll-us", "1000001"], "--ack-poll-us 1000001: expected 0 to 1000000 (1 s)"),
            ([.. pair, "--consumer-visibility", "standby"], "Argument 'standby' not recognized. Must be one of:"),
            ([.. pair, "--standby-check-silence-ms", "100"], "--standby-check-silence-ms 100: expected more than 100 (the primary sends a heartbeat every 100 ms)"),
            ([.. serve, "--peer", "nowhere", "--replication-port", "0"], "--peer 'nowhere': expected host:port (port 1 to 65535)"),
            ([.. pair, "--witness", "127.0.0.1"], "--witness '127.0.0.1': expected host:port (port 1 to 65535)"),
            ([.. serve, "--host", ""], "--host '': expected an address to listen on (an IP address or a host name), not an empty or blank value"),
            ([.. serve, "--host", " "], "--host ' ': expected an address to listen on (an IP address or a host name), not an empty or blank value"),
            ([.. anywhere, "--data", ""], "--data '': expected a data directory, not an empty or blank value"),
            ([.. serve, "--tls-cert", dir.Combine("no-such.pfx")], $"--tls-cert '{dir.Combine("no-such.pfx")}': no such file (expected a PKCS#12 .pfx file holding the certificate and its private key)"),
            ([.. serve, "--token", "app:orders..eu"], "--token 'app:orders..eu': publish pattern 'orders..eu' is not valid: empty token (leading, trailing or doubled '.')"),
            ([.. serve, "--token", "app:orders.[eu]"], "--token 'app:orders.[eu]': publish pattern 'orders.[eu]' is not valid: character '[' is not allowed"),
            ([.. serve, "--token", longToken], "--token 'tttttttttttttttttttttttt…' (65536 bytes of UTF-8): expected a token of at most 65535 bytes of UTF-8"),
            ([.. pair, "--node-id", "node a"], "--node-id 'node a': expected 1 to 64 characters of letters, digits, '.', '_' or '-'"),
            ([.. pair, "--node-id", ""], "--node-id '': expected 1 to 64 characters of letters, digits, '.', '_' or '-'"),
            ([.. pair, "--node-id", new string('n', 65)], $"--node-id '{new string('n', 65)}': expected 1 to 64 characters of letters, digits, '.', '_' or '-'"),
            ([.. pairWaiting, "--peer-wait-ms", "-1"], "--peer-wait-ms -1: expected at least 0 (0 = do not wait)"),
            ([.. serve, "--peer", "broker b:7410", "--replication-port", "0"], "--peer 'broker b:7410': expected a host name (labels of 1 to 63 letters, digits, '-' or '_', not beginning or ending with '-', joined by dots, at most 253 characters, the last label not all digits) or an IP address, not 'broker b'"),
            ([.. pair, "--witness", "10.0.0.256:7402"], "--witness '10.0.0.256:7402': expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2), not '10.0.0.256'"),
            ([.. pair, "--connect-timeout-ms", "0"], "--connect-timeout-ms 0: expected 1 to 2000 (four times --heartbeat-timeout-ms: the standby asks the witness for the lease only between connect attempts, so a longer one delays the failover as much; raise --heartbeat-timeout-ms with it)"),
            ([.. pair, "--connect-timeout-ms", "2001"], "--connect-timeout-ms 2001: expected 1 to 2000 (four times --heartbeat-timeout-ms"),
            ([.. pair, "--connect-timeout-ms", "4001", "--heartbeat-timeout-ms", "1000"], "--connect-timeout-ms 4001: expected 1 to 4000 (four times --heartbeat-timeout-ms"),
            ([.. pair, "--connect-timeout-ms", "x"], "--connect-timeout-ms expects a whole number, got 'x'"),
            ([.. pair, "--witness", "127.0.0.1:1", "--witness-timeout-ms", "-1"], "--witness-timeout-ms -1: expected 1 to 1000 (the witness lease, twice --heartbeat-timeout-ms: a renewal answered after the lease ran out no longer keeps the primary serving; raise --heartbeat-timeout-ms with it)"),
            ([.. pair, "--witness", "127.0.0.1:1", "--witness-timeout-ms", "1001"], "--witness-timeout-ms 1001: expected 1 to 1000 (the witness lease, twice --heartbeat-timeout-ms"),
            ([.. pair, "--witness", "127.0.0.1:1", "--witness-timeout-ms", "3001", "--heartbeat-timeout-ms", "1500"], "--witness-timeout-ms 3001: expected 1 to 3000 (the witness lease, twice --heartbeat-timeout-ms"),
            ([.. witness, "--data", dir.Combine("w"), "--host", ""], "--host '': expected an address to listen on (an IP address or a host name), not an empty or blank value"),
            ([.. witness, "--data", " "], "--data ' ': expected a data directory, not an empty or blank value"),
        ];
        var failures = new List<string>();
        foreach (var (args, reason) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0
                || !outcome.Errors.Contains(reason, StringComparison.Ordinal) || outcome.Errors.Contains("Unrecognized command or argument", StringComparison.Ordinal))
            {
                string[] shown = [.. args.Select(a => a.Length > 100 ? $"{a[..24]}… ({a.Length} characters)" : a)];
                failures.Add($"expected exit 64, nothing on stdout and \"{(reason.Length > 300 ? reason[..300] + "…" : reason)}\" on stderr: {outcome.Describe(shown)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("data")), "a refused serve creates no data directory");
        Assert.False(Directory.Exists(dir.Combine("w")), "a refused witness creates no data directory");
    }

    /// <summary>
    /// An address the runtime's IP parser reads as another one is a usage error, exit 64, whose reason names the flag,
    /// the value and the part at fault: <c>--peer 10.0.1:7410</c> (a typo of 10.0.0.1 or 10.0.1.x) connected to
    /// 10.0.0.1, <c>--witness ::1:7402</c> to ::1 port 7402 (or was 7402 part of the address?), <c>--host 0</c> bound
    /// every interface (0.0.0.0) and <c>witness --host 127.1</c> 127.0.0.1.
    /// </summary>
    [Fact]
    public async Task Serve_and_witness_refuse_addresses_read_as_other_addresses_with_exit_64()
    {
        using var dir = new TempDirectory("fastbroker-cli-address-usage");
        string[] serve = ["serve", "--port", "0", "--admin-port", "-1", "--quiet", "--data", dir.Combine("data")];
        string[] pair = [.. serve, "--peer", "127.0.0.1:1", "--replication-port", "0", "--role", "primary", "--peer-wait-ms", "0"];
        const string Quad = "expected an IPv4 address of four numbers 0 to 255 without leading zeros (10.0.0.2)";
        (string[] Args, string Reason)[] cases =
        [
            ([.. serve, "--peer", "10.0.1:7410", "--replication-port", "0"], $"--peer '10.0.1:7410': {Quad}, not '10.0.1'"),
            ([.. serve, "--peer", "127.1:7410", "--replication-port", "0"], $"--peer '127.1:7410': {Quad}, not '127.1'"),
            ([.. serve, "--peer", "::1:7410", "--replication-port", "0"], "--peer '::1:7410': expected an IPv6 address in brackets ([::1]:port): without them the port cannot be told apart from the address"),
            ([.. pair, "--witness", "1:7402"], $"--witness '1:7402': {Quad}, not '1'"),
            ([.. pair, "--witness", "0x7f000001:7402"], "--witness '0x7f000001:7402': expected an IPv4 address of four decimal numbers (10.0.0.2) or a host name, not '0x7f000001', which reads as an IP address in another form"),
            ([.. serve, "--host", "0"], $"--host '0': {Quad}, not '0'"),
            ([.. pair, "--host", "127.1"], $"--host '127.1': {Quad}, not '127.1'"),
            (["witness", "--port", "0", "--quiet", "--data", dir.Combine("w"), "--host", "127.1"], $"--host '127.1': {Quad}, not '127.1'"),
        ];
        var failures = new List<string>();
        foreach (var (args, reason) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0 || !outcome.Errors.Contains(reason, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout and \"{reason}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
        Assert.False(Directory.Exists(dir.Combine("data")), "a refused serve creates no data directory");
        Assert.False(Directory.Exists(dir.Combine("w")), "a refused witness creates no data directory");
    }

    /// <summary>
    /// <c>--witness-timeout-ms</c> was checked against twice <c>--heartbeat-timeout-ms</c> without <c>--witness</c>: a
    /// node that calls no witness exited 64 for a value it does not use. It starts; with <c>--witness</c> the value is
    /// still checked (<see cref="Serve_option_values_the_server_refuses_exit_64"/>).
    /// </summary>
    [Fact]
    public async Task A_witness_timeout_without_a_witness_does_not_refuse_the_node()
    {
        using var dir = new TempDirectory("fastbroker-cli-witness-timeout");
        string[] args =
        [
            "serve", "--port", "0", "--admin-port", "-1", "--quiet", "--data", dir.Combine("data"),
            "--peer", Cli.Address(FreePort.Next()), "--replication-port", "0", "--role", "primary", "--peer-wait-ms", "0", "--witness-timeout-ms", "5000",
        ];
        using var node = await Cli.StartAsync("fastbroker node", args);
        Assert.Contains(node.Lines, l => l.Contains("witness none", StringComparison.Ordinal));
    }

    /// <summary>
    /// A value that does not parse as the option's type (<c>pub --count x</c>, an int too large for an int, a double
    /// where an int is expected, a name that is none of an enum's) is a usage error: exit 64, a reason that says what
    /// the option expects in the user's terms and the value given (<c>--count expects a whole number, got 'x'</c>; it
    /// was System.CommandLine's "Cannot parse argument 'x' for option '--count' as expected type 'System.Int32'"), the
    /// hint at the command's help, nothing on stdout. An option with a validator of its own crashed
    /// instead (exit 134, an unhandled InvalidOperationException's stack trace): the validator read the value, which
    /// throws when it does not convert. Covers every command and every value type of an option: int, int?, long, long?,
    /// double, an enum, ports, serve's own checks and the check across <c>--producer-idle-timeout-s</c> and
    /// <c>--producer-expiry-s</c>.
    /// </summary>
    [Fact]
    public async Task A_value_that_does_not_parse_is_a_usage_error_not_a_crash()
    {
        using var dir = new TempDirectory("fastbroker-cli-unparsable");
        // If one of these ever parsed, serve would start: on any free port, no admin port, in the temp directory.
        string[] serve = ["serve", "--data", dir.Combine("data"), "--quiet"];
        (string[] Args, string Option, string Value, string Command)[] cases =
        [
            (["pub", "--count", "x", "t"], "--count", "x", "pub"), // int, OptionRules.AtLeast
            (["pub", "t", "m", "--count", "4294967296"], "--count", "4294967296", "pub"), // too large for an int
            (["pub", "t", "m", "--ttl-ms", "1.5"], "--ttl-ms", "1.5", "pub"), // pub's own validator
            (["sub", "t", "--count", "1e3"], "--count", "1e3", "sub"), // long
            (["sub", "t", "--timeout", "soon"], "--timeout", "soon", "sub"), // double
            (["sub", "t", "--commit-interval", "1s"], "--commit-interval", "1s", "sub"),
            (["journal", "dump", dir.Path, "--from-offset", "first"], "--from-offset", "first", "journal dump"), // long?
            (["journal", "dump", dir.Path, "--count", "all"], "--count", "all", "journal dump"),
            (["witness", "--port", "p", "--data", dir.Combine("w"), "--quiet"], "--port", "p", "witness"), // OptionRules.Port
            ([.. serve, "--port", "7400x", "--admin-port", "-1"], "--port", "7400x", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "off"], "--admin-port", "off", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--replication-port", "x"], "--replication-port", "x", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--producer-window", "1k"], "--producer-window", "1k", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--producer-recovery-records", "all"], "--producer-recovery-records", "all", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--producer-idle-timeout-s", "10s"], "--producer-idle-timeout-s", "10s", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--producer-expiry-s", "1h"], "--producer-expiry-s", "1h", "serve"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--max-retention-hold-mb", "1GB"], "--max-retention-hold-mb", "1GB", "serve"), // long
            (["bench", "failover", "--rounds", "many"], "--rounds", "many", "bench failover"),
            (["bench", "failover", "--rate", "fast"], "--rate", "fast", "bench failover"),
            ([.. serve, "--port", "0", "--admin-port", "-1", "--wait", "fast"], "--wait", "fast", "serve"), // enum
            (["bench", "ring", "--runs", "three"], "--runs", "three", "bench ring"), // shared by every scenario
            (["bench", "ring", "--messages", "1e6"], "--messages", "1e6", "bench ring"), // long?
            (["bench", "journal", "--warmup", "20s"], "--warmup", "20s", "bench journal"),
            (["bench", "e2e", "--ack-poll-us", "x"], "--ack-poll-us", "x", "bench e2e"), // int?
            (["sub", "t", "--timeout", "Infinity"], "--timeout", "Infinity", "sub"), // not a finite number
        ];
        var failures = new List<string>();
        foreach (var (args, option, value, command) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            string[] reason = [$"{option} expects ", $", got '{value}'"];
            var hint = $"run 'fastbroker {command} --help' for usage";
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0
                || !reason.All(r => outcome.Errors.Contains(r, StringComparison.Ordinal)) || !outcome.Errors.Contains(hint, StringComparison.Ordinal)
                || outcome.Errors.Contains("System.", StringComparison.Ordinal) || outcome.Errors.Contains("FastBroker.", StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64, nothing on stdout, \"{reason[0]}…{reason[1]}\" (no .NET type) and \"{hint}\" on stderr: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Length}:\n{string.Join("\n---\n", failures)}");
    }

    /// <summary>
    /// A <c>bench</c> count or duration out of range is a usage error, exit 64, naming the option, with nothing on stdout:
    /// <c>--runs 0</c> ran one run and reported "0 runs", <c>--messages 0</c> ran runs of nothing, a negative
    /// <c>--warmup</c> skipped it, and e2e took <c>--messages</c> past an int and <c>--ack-poll-us</c> as they were.
    /// The scenarios are filtered to nothing, so a command line that is not refused ends at once with exit 0.
    /// </summary>
    [Fact]
    public async Task Bench_counts_and_durations_out_of_range_exit_64()
    {
        string[] ring = ["bench", "ring", "--filter", "no-such-variant", "--warmup", "0"];
        string[] e2e = ["bench", "e2e", "--connect", "127.0.0.1:1", "--filter", "no-such-variant", "--warmup", "0"];
        (string[] Args, string Option)[] cases =
        [
            ([.. ring, "--runs", "0"], "--runs"),
            ([.. ring, "--runs", "-2"], "--runs"),
            ([.. ring, "--messages", "0"], "--messages"),
            ([.. ring, "--messages", "-5"], "--messages"),
            (["bench", "journal", "--filter", "no-such-variant", "--warmup", "-1"], "--warmup"),
            (["bench", "broker", "--filter", "no-such-variant", "--warmup", "3601"], "--warmup"), // an hour at most
            ([.. e2e, "--messages", "3000000000"], "--messages"), // past an int
            ([.. e2e, "--ack-poll-us", "-1"], "--ack-poll-us"),
            (["bench", "failover", "--rounds", "0"], "--rounds"),
        ];
        var failures = new List<string>();
        foreach (var (args, option) in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Output.Length > 0 || !outcome.Errors.Contains(option, StringComparison.Ordinal))
            {
                failures.Add($"expected exit 64 naming {option}, nothing on stdout: {outcome.Describe(args)}, stdout: [{outcome.Output}]");
            }
        }

        // In range: 0 s of warm-up is none, one run and one message are enough.
        var fine = await CliOutcome.RunAsync([.. ring, "--runs", "1", "--messages", "1"], TimeSpan.FromSeconds(30));
        if (fine.ExitCode != 0)
        {
            failures.Add($"expected exit 0: {fine.Describe([.. ring, "--runs", "1", "--messages", "1"])}");
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Length + 1}:\n{string.Join("\n---\n", failures)}");
    }

    /// <summary>
    /// A port or endpoint out of range in <c>witness --port</c>, <c>status --admin</c> and <c>promote --admin</c> is a
    /// usage error, exit 64, as for every command: the witness exited 1 ("cannot start"), status and promote exited 1
    /// with "unreachable:" and an exception's message, as if the node were down.
    /// </summary>
    [Fact]
    public async Task Witness_status_and_promote_refuse_ports_and_endpoints_out_of_range_with_exit_64()
    {
        using var dir = new TempDirectory("fastbroker-cli-endpoint-usage");
        string[][] cases =
        [
            ["witness", "--port", "70000", "--data", dir.Combine("w"), "--quiet"],
            ["witness", "--port", "-2", "--data", dir.Combine("w"), "--quiet"],
            ["status", "--admin", "nowhere"],
            ["status", "--admin", "127.0.0.1:1", "--admin", "127.0.0.1:0"],
            ["promote", "--admin", "127.0.0.1:99999"],
        ];
        var failures = new List<string>();
        foreach (var args in cases)
        {
            var outcome = await CliOutcome.RunAsync(args, TimeSpan.FromSeconds(30));
            if (outcome.ExitCode != 64 || outcome.HasStackTrace || outcome.Errors.Trim().Length == 0)
            {
                failures.Add($"expected exit 64: {outcome.Describe(args)}, stdout: {outcome.Output}");
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n---\n", failures));
    }
}
