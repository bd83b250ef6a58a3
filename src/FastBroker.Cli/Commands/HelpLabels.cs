using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace FastBroker.Cli.Commands;

/// <summary>
/// A command's row in its parent's help: System.CommandLine 2.0.0 writes every argument there as <c>&lt;name&gt;</c>
/// whatever its arity, so <c>topics &lt;pattern&gt;</c> read as if the pattern were required. Here an optional argument
/// is written <c>[name]</c> (the same width, so the columns stay aligned). The library's help builder is not public
/// in 2.0.0: the help action is wrapped, and the rows of its output rewritten.
/// </summary>
internal static class HelpLabels
{
    public static void Apply(RootCommand root)
    {
        if (root.Options.OfType<HelpOption>().FirstOrDefault() is { Action: SynchronousCommandLineAction stock } option)
        {
            option.Action = new WriteHelp(stock);
        }
    }

    /// <summary>The rows of <paramref name="command"/>'s subcommands in <paramref name="help"/>, with optional arguments in brackets.</summary>
    internal static string Relabel(string help, Command command)
    {
        var lines = help.Split('\n');
        foreach (var sub in command.Subcommands)
        {
            var arguments = sub.Arguments.Where(a => !a.Hidden).ToList();
            if (!arguments.Any(a => a.Arity.MinimumNumberOfValues == 0))
            {
                continue;
            }

            var stock = "  " + sub.Name + string.Concat(arguments.Select(a => $" <{a.HelpName ?? a.Name}>"));
            var label = "  " + sub.Name + string.Concat(arguments.Select(a => a.Arity.MinimumNumberOfValues == 0 ? $" [{a.HelpName ?? a.Name}]" : $" <{a.HelpName ?? a.Name}>"));
            for (var i = 0; i < lines.Length; i++)
            {
                if (lines[i].StartsWith(stock, StringComparison.Ordinal) && (lines[i].Length == stock.Length || lines[i][stock.Length] is ' ' or '\r'))
                {
                    lines[i] = label + lines[i][stock.Length..];
                }
            }
        }

        return string.Join('\n', lines);
    }

    private sealed class WriteHelp(SynchronousCommandLineAction stock) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true; // as the stock help action: -h wins over the errors of the rest

        public override int Invoke(ParseResult parseResult)
        {
            var configuration = parseResult.InvocationConfiguration;
            var output = configuration.Output;
            using var captured = new StringWriter();
            configuration.Output = captured;
            int exit;
            try
            {
                exit = stock.Invoke(parseResult);
            }
            finally
            {
                configuration.Output = output;
            }

            output.Write(Relabel(captured.ToString(), parseResult.CommandResult.Command));
            return exit;
        }
    }
}
