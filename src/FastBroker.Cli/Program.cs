using System.CommandLine;
using System.CommandLine.Invocation;
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
// No response files (System.CommandLine's default replaces a token that starts with '@' by the words of the file it
// names): `pub notes @todo` publishes '@todo', not the words of a file named todo with the options in it, and
// `pub chat '@alice hi'` is a message, not a missing file.
var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
var exit = await parse.InvokeAsync().ConfigureAwait(false);
return parse.Action is ParseErrorAction ? ExitCodes.Usage : exit; // System.CommandLine's own 1 would read as a command's result
