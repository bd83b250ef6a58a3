using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// A torn tail's report counts the records it drops, also when the first bad record's length word is what is
/// damaged: the records after it cannot be found by following length words then, but they are dropped all the same.
/// </summary>
public class DroppedCountTests
{
    private const int Count = 40;
    private const int Damaged = 15;

    public static TheoryData<string> Damage => ["length high byte flipped", "length low byte flipped", "length zeroed", "crc flipped"];

    [Theory]
    [MemberData(nameof(Damage))]
    public void A_torn_tail_reports_every_record_it_drops_whatever_field_of_the_first_one_is_damaged(string damage)
    {
        using var dir = new TempDirectory();
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, Count);
        }

        var segment = JournalFiles.Segments(dir.Path)[^1];
        Assert.Single(JournalFiles.Segments(dir.Path)); // the active segment: damage in it is a torn tail
        var record = JournalFiles.Records(segment).Single(r => r.Offset == Damaged);
        switch (damage)
        {
            case "length high byte flipped":
                JournalFiles.FlipBit(segment, record.Position + 3, 6); // past the segment: "bad record length"
                break;
            case "length low byte flipped":
                JournalFiles.FlipBit(segment, record.Position + 1, 0); // 256 bytes longer: a CRC32C mismatch
                break;
            case "length zeroed":
                using (var stream = new FileStream(segment, FileMode.Open, FileAccess.ReadWrite))
                {
                    stream.Position = record.Position;
                    stream.Write(new byte[4]); // an end, with records after it: non-zero bytes after the last record
                }

                break;
            default:
                JournalFiles.FlipBit(segment, record.Position + 5);
                break;
        }

        var verify = JournalInspector.Verify(dir.Path);
        Assert.Equal(2, verify.ExitCode);
        Assert.Equal(Count - Damaged, verify.DroppedRecordCount);

        using var reopened = JournalLog.Open(dir.Path, AppendReadTests.Small);
        Assert.Equal(Damaged, reopened.NextOffset);
        var dropped = Assert.Single(reopened.Recovery.Dropped);
        Assert.Equal(Damaged, dropped.FirstOffset);
        Assert.Equal(Count - Damaged, dropped.RecordCount);
        Assert.Equal(Damaged, AppendReadTests.ReadAllChecked(reopened));
    }
}
