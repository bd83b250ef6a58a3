using System.CommandLine;
using System.CommandLine.Parsing;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker serve</c>'s idempotent-producer flags: their checks, alone and against each other, and the options they set.</summary>
internal static partial class ServeCommand
{
    private static ProducerFlags CreateProducerFlags()
    {
        var flags = new ProducerFlags(
            new Option<int>("--producer-idle-timeout-s") { Description = "After this long with nothing stored for it, an idempotent producer keeps only its newest sequence (older retries are refused, never stored twice); 0 = never.", DefaultValueFactory = _ => (int)BrokerOptions.Default.ProducerIdleTimeout.TotalSeconds },
            new Option<int>("--producer-expiry-s") { Description = "After this long with nothing stored for it, an idempotent producer is forgotten (its id counts as new); 0 = never. At least --producer-idle-timeout-s.", DefaultValueFactory = _ => (int)BrokerOptions.Default.ProducerExpiry.TotalSeconds },
            new Option<int>("--producer-window") { Description = "Idempotent producers: how many of each producer's newest sequences are remembered for deduplication (a power of two, at least 64; keep clients' in-flight limit below it).", DefaultValueFactory = _ => BrokerOptions.Default.ProducerWindow },
            new Option<int>("--producer-recovery-records") { Description = $"At start, how many of each persistent topic's newest records are rescanned to rebuild the producers' windows: 0 (producers are not recovered at a restart: each counts as new) or at least {BrokerOptions.MinProducerRecoveryRecords}.", DefaultValueFactory = _ => BrokerOptions.Default.ProducerRecoveryRecords },
            new Option<int>("--producer-epoch-retention-s") { Description = "How long an idempotent producer id's newest epoch is kept after the id was last in use, so that a replaced instance coming back is still fenced; 0 = never forgotten. Given, 0 or at least --producer-expiry-s; not given, it counts as --producer-expiry-s when that is longer.", DefaultValueFactory = _ => (int)BrokerOptions.Default.ProducerEpochRetention.TotalSeconds });
        OptionRules.Check(flags.Window, static (result, value) =>
        {
            if (value < 64 || (value & (value - 1)) != 0)
            {
                result.AddError($"--producer-window ({value}) must be a power of two, at least 64");
            }
        });
        OptionRules.Check(flags.Recovery, static (result, value) =>
        {
            if (value < 0 || (value > 0 && value < BrokerOptions.MinProducerRecoveryRecords))
            {
                result.AddError($"--producer-recovery-records ({value}) must be 0 (no recovery) or at least {BrokerOptions.MinProducerRecoveryRecords}");
            }
        });
        foreach (var option in new[] { flags.Idle, flags.Expiry, flags.EpochRetention })
        {
            OptionRules.Check(option, (result, value) =>
            {
                if (value < 0)
                {
                    result.AddError($"{option.Name} cannot be negative");
                }
            });
        }

        return flags;
    }

    /// <summary>
    /// The checks across the producer flags. A command validator runs before defaults are applied, so a flag not given
    /// is compared by its default (<see cref="ValueOrDefault"/>); one given that does not convert is already the usage
    /// error: nothing to compare. The epoch retention is checked only when given: its default counts as a longer expiry,
    /// as <c>BrokerOptions.ProducerEpochRetention</c> does.
    /// </summary>
    private static void ValidateProducerFlags(CommandResult result, ProducerFlags flags)
    {
        if (!ValueOrDefault(result, flags.Idle, BrokerOptions.Default.ProducerIdleTimeout, out var idle)
            || !ValueOrDefault(result, flags.Expiry, BrokerOptions.Default.ProducerExpiry, out var expiry))
        {
            return;
        }

        if (expiry > 0 && (idle == 0 || expiry < idle))
        {
            result.AddError($"--producer-expiry-s ({expiry}) must be 0 (never) or at least --producer-idle-timeout-s ({idle}, which must then not be 0)");
        }

        if (Given(result, flags.EpochRetention, out var retention) && retention > 0)
        {
            if (expiry == 0)
            {
                result.AddError($"--producer-epoch-retention-s ({retention}) must be 0 (never) when --producer-expiry-s is 0 (never)");
            }
            else if (retention < expiry)
            {
                result.AddError($"--producer-epoch-retention-s ({retention}) must be 0 (never) or at least --producer-expiry-s ({expiry})");
            }
        }
    }

    /// <summary>The value of <paramref name="option"/> as given, or <paramref name="fallback"/> in seconds when it was not; false when given but not converting.</summary>
    private static bool ValueOrDefault(CommandResult result, Option<int> option, TimeSpan fallback, out int value)
    {
        if (result.GetResult(option) is not { Implicit: false })
        {
            value = (int)fallback.TotalSeconds;
            return true;
        }

        return OptionRules.TryGetValue(result, option, out value);
    }

    /// <summary>serve's idempotent-producer flags (ages in seconds, 0 = never).</summary>
    private sealed record ProducerFlags(Option<int> Idle, Option<int> Expiry, Option<int> Window, Option<int> Recovery, Option<int> EpochRetention)
    {
        public Option[] All => [Idle, Expiry, Window, Recovery, EpochRetention];

        public BrokerOptions ApplyTo(BrokerOptions options, ParseResult parse) => options with
        {
            ProducerIdleTimeout = Seconds(parse.GetValue(Idle)),
            ProducerExpiry = Seconds(parse.GetValue(Expiry)),
            ProducerWindow = parse.GetValue(Window),
            ProducerRecoveryRecords = parse.GetValue(Recovery),
            ProducerEpochRetention = Seconds(parse.GetValue(EpochRetention)),
        };
    }
}
