using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

/// <summary>
/// Retention unlinks a segment and then its index file; a crash between the two leaves an <c>.idx</c> with no segment,
/// which nothing reads and nothing else would ever remove.
/// </summary>
public class OrphanIndexTests
{
    [Fact]
    public void An_index_file_whose_segment_is_gone_is_removed_on_open()
    {
        using var dir = new TempDirectory();
        string[] indexes;
        using (var journal = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            AppendReadTests.AppendRange(journal, 5000);
            RetentionTests.SealAll(journal);
            indexes = Directory.GetFiles(dir.Path, "*.idx").Order(StringComparer.Ordinal).ToArray();
        }

        Assert.True(indexes.Length >= 2, $"{indexes.Length} sealed segment(s)");

        // What retention leaves when the process dies between its two unlinks: the oldest segment gone, its index not.
        File.Delete(Path.ChangeExtension(indexes[0], ".seg"));
        // A stray name that is not a segment's index is not the journal's to delete.
        var foreign = Path.Combine(dir.Path, "notes.idx");
        File.WriteAllText(foreign, "kept");

        using (var reopened = JournalLog.Open(dir.Path, AppendReadTests.Small))
        {
            Assert.False(File.Exists(indexes[0]), "the orphan index outlived the open");
            foreach (var kept in indexes[1..])
            {
                Assert.True(File.Exists(kept), $"{Path.GetFileName(kept)}: a live segment's index was deleted");
            }

            Assert.True(File.Exists(foreign));
            Assert.True(reopened.FirstOffset > 0);
            Assert.Equal(5000, reopened.NextOffset);
            Assert.Equal(5000, AppendReadTests.ReadAllChecked(reopened, reopened.FirstOffset));
        }
    }
}
