using System.Buffers.Binary;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// <see cref="PositionImage"/>, the replicator's record of the standby's copy of a position file: the image of a file
/// copied whole, with each commit then applied to the copy (by a <see cref="PositionStore"/>, as the standby applies
/// them) also applied to it, matches the copy byte for byte; a file changed in any other way does not match.
/// </summary>
public class PositionImageTests
{
    [Fact]
    public void An_image_follows_the_commits_applied_to_a_copy_byte_for_byte()
    {
        using var dir = new TempDirectory();
        var primary = dir.Combine("primary.pos");
        var copy = dir.Combine("copy.pos");
        using var store = PositionStore.Open(primary);
        store.Commit("feed", 5);
        store.Commit("side", 3);
        store.Commit("feed", 7);

        var whole = Read(primary);
        File.WriteAllBytes(copy, whole);
        var image = PositionImage.Of(whole);
        Assert.NotNull(image);
        Assert.True(image.Matches(whole));

        // The commits after the copy, on the primary, on the copy (its own store, as the standby's) and on the image:
        // a position moved forward and back, a new topic, a topic with a long name, a name sharing a prefix.
        var random = new Random(81);
        string[] topics = ["feed", "side", "third", new string('t', 200), "fee", "feed.more"];
        using var copyStore = PositionStore.Open(copy);
        for (var i = 0; i < 200; i++)
        {
            var topic = topics[random.Next(topics.Length)];
            var next = random.Next(0, 1000);
            var before = Read(copy);
            store.Commit(topic, next);
            var after = Read(primary);
            Assert.True(
                image.Matches(after) == after.AsSpan().SequenceEqual(before),
                $"step {i}: commit {topic} {next}: before it is applied to the image, the image matches the file only if the commit changed nothing");
            copyStore.Commit(topic, next);
            Assert.True(image.Commit(topic, next));
            Assert.True(Read(copy).AsSpan().SequenceEqual(Read(primary)), $"step {i}: the copy differs from the primary's file");
            Assert.True(image.Matches(Read(primary)), $"step {i}: commit {topic} {next}: the image does not match the file");
        }
    }

    [Fact]
    public void An_image_does_not_match_a_file_changed_other_than_by_its_commits()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("keeper.pos");
        using (var store = PositionStore.Open(path))
        {
            store.Commit("feed", 5);
        }

        var image = PositionImage.Of(Read(path))!;
        using (var store = PositionStore.Open(path))
        {
            store.Commit("feed", 6); // a commit the image was not given
        }

        Assert.False(image.Matches(Read(path)));
        Assert.True(image.Commit("feed", 6));
        Assert.True(image.Matches(Read(path)));

        // A byte past the entries (not zero on the copy), a file of another length, a new file of the same name.
        var bytes = Read(path);
        bytes[^1] = 1;
        Assert.False(image.Matches(bytes));
        Assert.False(image.Matches(Read(path).AsSpan(0, 4096)));
        File.Delete(path);
        using (var store = PositionStore.Open(path))
        {
            store.Commit("feed", 6);
        }

        Assert.True(image.Matches(Read(path))); // the same bytes: the same file for the copy
        File.Delete(path);
        using (var store = PositionStore.Open(path))
        {
            store.Commit("side", 1);
            store.Commit("feed", 6);
        }

        Assert.False(image.Matches(Read(path)));
    }

    [Fact]
    public void A_file_that_is_not_a_whole_position_file_has_no_image()
    {
        Assert.Null(PositionImage.Of([]));
        Assert.Null(PositionImage.Of(new byte[PositionStore.FileLength])); // no magic: a copy of it opens as a blank file
        Assert.Null(PositionImage.Of(new byte[16]));
        var countOutOfRange = new byte[PositionStore.FileLength];
        BinaryPrimitives.WriteInt64LittleEndian(countOutOfRange, 0x534F_5052_4246_4246L);
        BinaryPrimitives.WriteInt64LittleEndian(countOutOfRange.AsSpan(8), PositionStore.MaxTopics + 1);
        Assert.Null(PositionImage.Of(countOutOfRange));
    }

    private static byte[] Read(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[f.Length];
        f.ReadExactly(bytes);
        return bytes;
    }
}
