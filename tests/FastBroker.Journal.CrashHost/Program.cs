using System.Globalization;
using FastBroker.Journal;
using FastBroker.Journal.CrashHost;

// Usage: FastBroker.Journal.CrashHost <dir> [repair <step> [repair-corruption] | keep-aside <point> <root>]
// Prints "recovered <nextOffset> <droppedRecords>" once, then "ack <offset>" for every record, only after it is
// durable (group commit), until killed. Batches of random size, alternating TryAppend and the batch API.
// With repair: see RepairCrash.cs; with keep-aside: see KeepAsideCrash.cs.
if (args.Length > 2 && args[1] == "repair")
{
    return RepairCrash.Run(args[0], args[2], args.Length > 3 && args[3] == "repair-corruption");
}

if (args.Length > 3 && args[1] == "keep-aside")
{
    return KeepAsideCrash.Run(args[0], args[2], args[3]);
}

var journal = JournalLog.Open(args[0], CrashPayload.Options);
var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"recovered {journal.NextOffset} {journal.Recovery.DroppedRecordCount}"));
stdout.Flush();
var random = new Random();
var buffer = new byte[400];
for (var round = 0; ; round++)
{
    var first = journal.NextOffset;
    var count = random.Next(1, 65);
    if (round % 2 == 0)
    {
        for (var i = 0; i < count; i++)
        {
            var offset = journal.NextOffset;
            var payload = buffer.AsSpan(0, CrashPayload.LengthFor(offset));
            CrashPayload.Fill(offset, payload);
            while (!journal.TryAppend(payload, out _))
            {
                journal.WaitForDurable(journal.DurableOffset, TimeSpan.FromSeconds(10));
            }
        }
    }
    else
    {
        var bytes = 0;
        for (var i = 0; i < count; i++)
        {
            bytes += JournalLog.StoredSize(0, 0, CrashPayload.LengthFor(first + i));
        }

        JournalBatch b; // not a using: a batch is a mutable ref struct
        while (!journal.TryBeginBatch(bytes, out b))
        {
            journal.WaitForDurable(journal.DurableOffset, TimeSpan.FromSeconds(10));
        }

        for (var i = 0; i < count; i++)
        {
            var payload = buffer.AsSpan(0, CrashPayload.LengthFor(first + i));
            CrashPayload.Fill(first + i, payload);
            b.Append(payload);
        }

        b.Complete();
    }

    journal.Commit();
    var last = journal.NextOffset - 1;
    if (!journal.WaitForDurable(last, TimeSpan.FromMinutes(1)))
    {
        Console.Error.WriteLine("durability wait timed out");
        return 1;
    }

    for (var o = first; o <= last; o++)
    {
        stdout.Write("ack ");
        stdout.WriteLine(o.ToString(CultureInfo.InvariantCulture));
    }

    stdout.Flush();
}
