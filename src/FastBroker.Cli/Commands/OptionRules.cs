using System.CommandLine;

namespace FastBroker.Cli.Commands;

/// <summary>Checks of option values made when the command line is parsed, so that a bad value is a usage error (<see cref="ExitCodes.Usage"/>).</summary>
internal static class OptionRules
{
    /// <summary>Refuses values below <paramref name="min"/>.</summary>
    public static void AtLeast<T>(Option<T> option, T min)
        where T : struct, IComparable<T>
    {
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<T>() is var value && value.CompareTo(min) < 0)
            {
                result.AddError($"{option.Name} {value}: expected at least {min}");
            }
        });
    }

    /// <summary>Refuses values below <paramref name="min"/>; no value is fine.</summary>
    public static void AtLeast<T>(Option<T?> option, T min)
        where T : struct, IComparable<T>
    {
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<T?>() is { } value && value.CompareTo(min) < 0)
            {
                result.AddError($"{option.Name} {value}: expected at least {min}");
            }
        });
    }
}
