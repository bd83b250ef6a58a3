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
var parse = root.Parse(args);
var exit = await parse.InvokeAsync().ConfigureAwait(false);
return parse.Action is ParseErrorAction ? ExitCodes.Usage : exit; // System.CommandLine's own 1 would read as a command's result
