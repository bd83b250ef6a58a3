using System.CommandLine;
using System.CommandLine.Parsing;

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
