using System.CommandLine;
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

return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
