using System.CommandLine;
using System.Net.Sockets;
using FastBroker.Replication;

namespace FastBroker.Cli.Commands;

/// <summary>
/// <c>fastbroker witness</c>: the third process of a failover pair. It grants the primary's lease, so a standby promotes
/// only when the witness agrees, and a network partition can never leave two primaries. Holder and epoch live in
/// <c>./witness-data/witness.state</c>. SIGINT, SIGTERM and SIGHUP stop it (the state is already on disk after every grant).
/// </summary>
internal static class WitnessCommand
{
    public static Command Create()
    {
        var host = new Option<string>("--host") { Description = "Address to listen on: an IPv4 address of four numbers, an IPv6 address or a host name, resolved at start: an IP address is bound as given; a host name binds its first IPv4 address, or its first address if it has none (loopback by default; use 0.0.0.0 deliberately).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Witness port (0 = any free port).", DefaultValueFactory = _ => WitnessOptions.DefaultPort };
        OptionRules.Port(port, 0);
        var data = new Option<string>("--data") { Description = "Data directory holding witness.state (created if missing).", DefaultValueFactory = _ => "witness-data" };
        var maxTtl = new Option<int>("--max-ttl-ms")
        {
            Description = "Longest lease granted, 50 to 60000 ms (longer requests get this). After a restart the witness keeps the lease for its last holder this long, so no failover happens sooner.",
            DefaultValueFactory = _ => (int)WitnessOptions.Default.MaxTtl.TotalMilliseconds,
        };
        var (minTtlMs, maxTtlMs) = ((int)WitnessOptions.MinMaxTtl.TotalMilliseconds, (int)WitnessOptions.MaxMaxTtl.TotalMilliseconds);
        OptionRules.Check(maxTtl, (result, value) =>
        {
            // WitnessOptions.Validate's rule, in flag terms: a usage error before anything is opened or bound.
            if (value < minTtlMs || value > maxTtlMs)
            {
                result.AddError($"--max-ttl-ms {value}: expected {minTtlMs} to {maxTtlMs} (a lease lasts at most {maxTtlMs} ms, and a restarted witness keeps the lease for its last holder --max-ttl-ms before any failover)");
            }
        });
        var margin = new Option<int>("--safety-margin-ms")
        {
            Description = "How long an expired lease stays reserved for its holder before another node may take it, 0 to 2147423647 ms (it covers the clocks of witness and holder running at different rates; a denial states the holder's remaining lease plus this).",
            DefaultValueFactory = _ => (int)WitnessOptions.Default.SafetyMargin.TotalMilliseconds,
        };
        var maxMarginMs = (long)WitnessOptions.MaxSafetyMargin.TotalMilliseconds;
        OptionRules.Check(margin, (result, value) =>
        {
            // WitnessOptions.Validate's rule, in flag terms: a usage error before anything is opened or bound.
            if (value < 0 || value > maxMarginMs)
            {
                result.AddError($"--safety-margin-ms {value}: expected 0 to {maxMarginMs} (a denial states the holder's remaining lease plus the margin, at most {int.MaxValue} ms after a lease of up to {maxTtlMs} ms)");
            }
        });
        // WitnessOptions refuses these by their property names (ArgumentException.ThrowIfNullOrWhiteSpace).
        OptionRules.NotBlank(host, "an address to listen on (an IP address or a host name)");
        OptionRules.ListenHost(host);
        OptionRules.NotBlank(data, "a data directory");
        var quiet = new Option<bool>("--quiet") { Description = "Do not log grants, denials and errors." };
        var cmd = new Command("witness", "Run the lease witness of a primary/standby pair (TCP, line protocol). Ctrl-C, SIGTERM or SIGHUP stops it.")
        {
            host, port, data, maxTtl, margin, quiet,
        };
        cmd.SetAction(async (parse, cancellationToken) =>
        {
            var options = WitnessOptions.Default with
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                DataDirectory = parse.GetValue(data)!,
                MaxTtl = TimeSpan.FromMilliseconds(parse.GetValue(maxTtl)),
                SafetyMargin = TimeSpan.FromMilliseconds(parse.GetValue(margin)),
                Log = parse.GetValue(quiet) ? null : static line => Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}"),
            };

            using var stop = new StopSignal(cancellationToken);

            WitnessServer witness;
            try
            {
                witness = await WitnessServer.StartAsync(options, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"fastbroker witness: cannot start on {options.Host}:{options.Port} with data '{options.DataDirectory}': {ex.Message}");
                return 1;
            }

            await using (witness.ConfigureAwait(false))
            {
                Console.WriteLine($"witness listening on {witness.EndPoint}, epoch {witness.Epoch}, holder {witness.Holder ?? "-"}");
                Console.Out.Flush();
                try
                {
                    await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }

                await witness.StopAsync().ConfigureAwait(false);
            }

            Console.Error.WriteLine("fastbroker witness: stopped");
            return 0;
        });
        return cmd;
    }
}
