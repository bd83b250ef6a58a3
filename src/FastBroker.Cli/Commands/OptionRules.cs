using System.CommandLine;
using System.CommandLine.Parsing;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace FastBroker.Cli.Commands;

/// <summary>Checks of option values made when the command line is parsed, so that a bad value is a usage error (<see cref="ExitCodes.Usage"/>).</summary>
internal static class OptionRules
{
    /// <summary>
    /// Adds <paramref name="check"/> as a validator of <paramref name="option"/>, called with the option's value only when
    /// that value converted to <typeparamref name="T"/> (see <see cref="TryGetValue"/>): every option validator of the
    /// CLI goes through here, so a value that does not parse (<c>pub --count x</c>) is System.CommandLine's usage error,
    /// exit 64, not an unhandled exception.
    /// </summary>
    public static void Check<T>(Option<T> option, Action<OptionResult, T> check) =>
        option.Validators.Add(result =>
        {
            if (TryGetValue(result, option, out var value))
            {
                check(result, value);
            }
        });

    /// <summary>
    /// The value of <paramref name="option"/> as <paramref name="result"/> (the option's result or its command's) has it;
    /// false when the option's token does not convert to <typeparamref name="T"/>. System.CommandLine 2.0 runs option
    /// and command validators before it converts the value, and reading a value that does not convert records the
    /// conversion error (<see cref="ValueParsers"/>: "--count expects a whole number, got 'x'") and then
    /// throws <see cref="InvalidOperationException"/>: uncaught in a validator it crashed the CLI (exit 134, a stack
    /// trace). The recorded error is the usage error, so the check is skipped; an exception with no error recorded for
    /// the option is not a conversion failure and goes on.
    /// </summary>
    public static bool TryGetValue<T>(SymbolResult result, Option<T> option, [MaybeNullWhen(false)] out T value)
    {
        try
        {
            value = result.GetValue(option)!;
            return true;
        }
        catch (InvalidOperationException) when (result.GetResult(option) is { } optionResult && optionResult.Errors.Any())
        {
            value = default;
            return false;
        }
    }

    /// <summary>Refuses values below <paramref name="min"/>.</summary>
    public static void AtLeast<T>(Option<T> option, T min)
        where T : struct, IComparable<T> =>
        Check(option, (result, value) =>
        {
            if (value.CompareTo(min) < 0)
            {
                result.AddError($"{option.Name} {value}: expected at least {min}");
            }
        });

    /// <summary>
    /// Why the value of <paramref name="argument"/> (a topic or pattern) is refused: it starts with '-' and does not follow
    /// <c>--</c>; null when it is fine. System.CommandLine 2.0.0 hands a token that names none of the command's options to
    /// an argument with room for it, so a mistyped option (<c>topics --no-such-option</c>) would be taken for the
    /// pattern and the command would run. Checked by the command's action, before it connects: a validator cannot see
    /// the <c>--</c>, after which such a name is taken.
    /// </summary>
    /// <param name="parse">The parse result.</param>
    /// <param name="argument">The topic or pattern argument.</param>
    /// <param name="what">What the argument is, for the message ("topic", "pattern").</param>
    public static string? OptionLikeValue(ParseResult parse, Argument<string> argument, string what)
    {
        if (parse.GetValue(argument) is not { } value || !value.StartsWith('-'))
        {
            return null;
        }

        var tokens = parse.Tokens;
        for (var i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].Type == TokenType.DoubleDash)
            {
                for (var j = i + 1; j < tokens.Count; j++)
                {
                    if (tokens[j].Value == value)
                    {
                        return null;
                    }
                }

                break;
            }
        }

        var command = parse.CommandResult.Command.Name;
        return $"{command}: unknown option '{value}' (a {what} that starts with '-' goes after '--': fastbroker {command} [options] -- {value})";
    }

    /// <summary>
    /// Why a value of <paramref name="argument"/> (<c>pub</c>'s payloads) is refused: it looks like an option and does
    /// not follow <c>--</c>; null when none does. As for a topic (<see cref="OptionLikeValue"/>), System.CommandLine
    /// hands a token that names none of the command's options to the payloads, so <c>pub t --bogus</c> would publish
    /// '--bogus'. A payload looks like an option when it starts with '-', unless '-' is followed by a digit: a negative
    /// number (<c>-5</c>, <c>-1.5</c>) is a payload, since no option of the CLI is spelt that way. A lone '-' is refused
    /// too: it would read as "standard input". Each token is judged where it stands on the command line, so
    /// <c>pub t -- -x</c> publishes '-x' and <c>pub t -x -- -x</c> is refused.
    /// </summary>
    /// <param name="parse">The parse result.</param>
    /// <param name="argument">The payloads argument.</param>
    /// <param name="what">What a value is, for the message ("message").</param>
    public static string? OptionLikeValues(ParseResult parse, Argument<string[]> argument, string what)
    {
        if (parse.GetResult(argument) is not { } result)
        {
            return null;
        }

        foreach (var token in parse.Tokens)
        {
            if (token.Type == TokenType.DoubleDash)
            {
                break; // every token after it is a value, whatever it looks like
            }

            if (token.Type == TokenType.Argument && LooksLikeOption(token.Value) && result.Tokens.Any(t => ReferenceEquals(t, token)))
            {
                var command = parse.CommandResult.Command.Name;
                return $"{command}: unknown option '{token.Value}' (a {what} that starts with '-' goes after '--': fastbroker {command} [options] <topic> -- {token.Value}; a negative number such as -5 needs no '--')";
            }
        }

        return null;
    }

    private static bool LooksLikeOption(string value) => value.StartsWith('-') && !(value.Length > 1 && char.IsAsciiDigit(value[1]));

    /// <summary>Refuses a value that is not host:port with a port from 1 to 65535 (an endpoint to connect to).</summary>
    public static void Endpoint(Option<string> option) =>
        Check(option, (result, value) => CheckEndpoint(result, option.Name, value));

    /// <summary>Refuses values that are not host:port with a port from 1 to 65535 (endpoints to connect to).</summary>
    public static void Endpoints(Option<string[]> option) =>
        Check(option, (result, values) =>
        {
            foreach (var value in values ?? [])
            {
                CheckEndpoint(result, option.Name, value);
            }
        });

    /// <summary>Refuses a port outside <paramref name="min"/> to 65535.</summary>
    public static void Port(Option<int> option, int min) =>
        Check(option, (result, value) =>
        {
            if (value < min || value > 65535)
            {
                result.AddError($"{option.Name} {value}: expected {min} to 65535");
            }
        });

    /// <summary>
    /// Adds an error to <paramref name="result"/> unless <paramref name="text"/> is host:port with a port from 1 to 65535;
    /// true when it is.
    /// </summary>
    public static bool CheckEndpoint(OptionResult result, string name, string? text)
    {
        text ??= "";
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            result.AddError($"{name} '{text}': expected host:port (port 1 to 65535)");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Refuses a value that is empty or only white space, which the options it fills refuse by their own name (such as
    /// "Host is required"); <paramref name="expected"/> says what the option names ("a data directory").
    /// </summary>
    public static void NotBlank(Option<string> option, string expected) =>
        Check(option, (result, value) =>
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                result.AddError($"{option.Name} '{value}': expected {expected}, not an empty or blank value");
            }
        });

    /// <summary>
    /// Refuses an address to listen on (<c>serve --host</c>, <c>witness --host</c>) that the options it fills refuse
    /// (<c>ReplicationOptions.IsValidHost</c>, the parser of <c>--peer</c> and <c>--witness</c>): a shortened IPv4 form
    /// such as <c>127.1</c> or <c>0</c>, which would bind another address than the one meant. A blank value is
    /// <see cref="NotBlank"/>'s to refuse.
    /// </summary>
    public static void ListenHost(Option<string> option) =>
        Check(option, (result, value) =>
        {
            if (!string.IsNullOrWhiteSpace(value) && !Replication.ReplicationOptions.IsValidHost(value, out var reason))
            {
                result.AddError($"{option.Name} '{value}': {reason}");
            }
        });

    /// <summary>Refuses values below <paramref name="min"/>; no value is fine.</summary>
    public static void AtLeast<T>(Option<T?> option, T min)
        where T : struct, IComparable<T> =>
        Check(option, (result, given) =>
        {
            if (given is { } value && value.CompareTo(min) < 0)
            {
                result.AddError($"{option.Name} {value}: expected at least {min}");
            }
        });
}
