using System.CommandLine;

namespace FastBroker.Cli.Commands;

/// <summary><c>fastbroker journal dump|verify</c>: look inside a journal directory.</summary>
internal static class JournalCommand
{
    public static Command Create()
    {
        var journal = new Command("journal", "Inspect a journal directory (dump records, verify checksums).");
        return journal;
    }
}
