using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using FastBroker.Cli.Commands;

var root = new RootCommand("FastBroker: an LMAX-style message broker (rings, memory-mapped journal, fan-out, work queues).")
{
    ServeCommand.Create(),
    BenchCommand.Create(),
    JournalCommand.Create(),
    WitnessCommand.Create(),
};
foreach (var command in ClientCommands.Create().Concat(PairCommands.Create()))
{
    root.Subcommands.Add(command);
}

HelpLabels.Apply(root);
ValueParsers.Apply(root); // conversion errors in the user's terms ("--rate expects a whole number, got 'x'")
// No response files (System.CommandLine's default replaces a token that starts with '@' by the words of the file it
// names): `pub notes @todo` publishes '@todo', not the words of a file named todo with the options in it, and
// `pub chat '@alice hi'` is a message, not a missing file.
var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
if (parse.Action is ParseErrorAction parseError)
{
    // System.CommandLine's default writes the command's whole help, and its "did you mean" suggestions, to stdout
    // besides the errors on stderr: a script capturing stdout would take them for results. Here everything goes to
    // stderr, the help replaced by a hint at it (`--help` itself still writes the help to stdout).
    parseError.ShowHelp = false;
    await parse.InvokeAsync(new InvocationConfiguration { Output = Console.Error, Error = Console.Error }).ConfigureAwait(false);
    return Usage(parse); // System.CommandLine's own 1 would read as a command's result
}

var exit = await parse.InvokeAsync().ConfigureAwait(false);
return exit == ExitCodes.Usage ? Usage(parse) : exit; // a command that refused a value has said why on stderr

// The hint after a usage error's reason, on stderr, and the usage exit code.
static int Usage(ParseResult parse)
{
    var names = new List<string>();
    for (var result = parse.CommandResult; result.Parent is CommandResult parent; result = parent)
    {
        names.Insert(0, result.Command.Name);
    }

    Console.Error.WriteLine($"run '{string.Join(' ', ["fastbroker", .. names, "--help"])}' for usage");
    return ExitCodes.Usage;
}
