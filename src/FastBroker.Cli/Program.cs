using System.CommandLine;
using FastBroker.Cli.Commands;

var root = new RootCommand("FastBroker: an LMAX-style message broker (rings, memory-mapped journal, fan-out, work queues).")
{
    BenchCommand.Create(),
    JournalCommand.Create(),
};

return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
