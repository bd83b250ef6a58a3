using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace FastBroker.Cli.Commands;

/// <summary>
/// Conversion of option values, with errors in the user's terms: <c>--rate expects a whole number, got 'x'</c>, not
/// System.CommandLine's "Cannot parse argument 'x' for option '--rate' as expected type 'System.Int32'". A value that
/// does not convert is a usage error (<see cref="ExitCodes.Usage"/>), as any other.
/// </summary>
internal static class ValueParsers
{
    /// <summary>
    /// Gives every numeric option of <paramref name="command"/> and its subcommands (int, long, double, nullable or
    /// not) a parser whose error says what the option expects. Enum options take theirs from <see cref="Choice{T}"/>
    /// where they are declared; string and bool options need none.
    /// </summary>
    public static void Apply(Command command)
    {
        foreach (var option in command.Options)
        {
            switch (option)
            {
                case Option<int> o:
                    o.CustomParser = r => Integer(r, o.Name, int.MinValue, int.MaxValue, out var v) ? (int)v : default;
                    break;
                case Option<int?> o:
                    o.CustomParser = r => Integer(r, o.Name, int.MinValue, int.MaxValue, out var v) ? (int)v : null;
                    break;
                case Option<long> o:
                    o.CustomParser = r => Integer(r, o.Name, long.MinValue, long.MaxValue, out var v) ? v : default;
                    break;
                case Option<long?> o:
                    o.CustomParser = r => Integer(r, o.Name, long.MinValue, long.MaxValue, out var v) ? v : null;
                    break;
                case Option<double> o:
                    o.CustomParser = r => Number(r, o.Name, out var v) ? v : default;
                    break;
            }
        }

        foreach (var sub in command.Subcommands)
        {
            Apply(sub);
        }
    }

    /// <summary>Parses <paramref name="option"/>'s value as one of <typeparamref name="T"/>'s names (any case), and says which they are when it is not.</summary>
    public static void Choice<T>(Option<T> option)
        where T : struct, Enum =>
        option.CustomParser = r =>
        {
            var token = Token(r);
            if (Enum.GetNames<T>().FirstOrDefault(n => string.Equals(n, token, StringComparison.OrdinalIgnoreCase)) is { } name)
            {
                return Enum.Parse<T>(name);
            }

            r.AddError($"{option.Name} expects one of {string.Join(", ", Enum.GetNames<T>())}, got '{token}'");
            return default;
        };

    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/> (digits, an optional sign, no separators).</summary>
    private static bool Integer(ArgumentResult result, string name, long min, long max, out long value)
    {
        var token = Token(result);
        if (long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) && value >= min && value <= max)
        {
            return true;
        }

        if (System.Numerics.BigInteger.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big))
        {
            result.AddError(big > max ? $"{name} expects a whole number no larger than {max}, got '{token}'" : $"{name} expects a whole number no smaller than {min}, got '{token}'");
        }
        else
        {
            result.AddError($"{name} expects a whole number, got '{token}'");
        }

        return false;
    }

    /// <summary>A finite number, with an optional fraction and exponent (2, 0.5, 1e3), '.' as the decimal point.</summary>
    private static bool Number(ArgumentResult result, string name, out double value)
    {
        var token = Token(result);
        if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value))
        {
            return true;
        }

        result.AddError($"{name} expects a number (such as 2 or 0.5), got '{token}'");
        return false;
    }

    /// <summary>The value's one token (an option of these types takes exactly one); empty for none.</summary>
    private static string Token(ArgumentResult result) => result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
}
