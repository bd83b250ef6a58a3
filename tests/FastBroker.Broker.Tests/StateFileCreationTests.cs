using System.Buffers.Binary;
using System.Text;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A new state file (a durable name's first use, a group's first join) gets its name only once its header is written:
/// its bytes are written and flushed under a temporary name (<c>.creating</c> appended: <c>MappedStateFile.CreatingSuffix</c>) and renamed
/// into place, so no reader of its directory (a primary's checks of its state files) finds it short or without its
/// magic; what a crash leaves under the temporary name is removed when the broker opens.
/// </summary>
public class StateFileCreationTests
{
    private const string Creating = ".creating"; // MappedStateFile.CreatingSuffix

    [Theory]
    [InlineData("position")]
    [InlineData("group")]
    public void A_new_state_file_gets_its_name_only_once_its_header_is_written(string kind)
    {
        using var dir = new TempDirectory();
        var path = dir.Combine(kind == "position" ? "sub.pos" : "g.state");
        var (magic, length) = kind == "position" ? (PositionStore.Magic, PositionStore.FileLength) : (GroupAckStore.Magic, GroupAckStore.FileLength());
        var flusher = new StateFileFlusher();
        var seen = new List<string>();
        flusher.Creating = p =>
        {
            Assert.Equal(path, p);
            var temporary = StateFileHeader.Read(p + Creating, magic, 1, kind, "magic");
            seen.Add($"{(File.Exists(p) ? "named" : "not named")}, temporary {temporary.Contents} of {temporary.Length} bytes");
        };

        if (kind == "position")
        {
            using var store = PositionStore.Open(path, flusher);
            Assert.False(store.WasBlank);
            Assert.Empty(store.All());
        }
        else
        {
            using var store = GroupAckStore.Open(path, initialFloor: 7, flusher: flusher);
            Assert.False(store.WasBlank);
            Assert.Equal(7, store.Floor);
            Assert.Equal(7, GroupAckStore.ReadFloor(path));
        }

        // While it was being made, its name did not exist yet, and the temporary file already held its header, whole.
        Assert.Equal([$"not named, temporary {StateFileContents.State} of {length} bytes"], seen);
        Assert.False(File.Exists(path + Creating));
        Assert.Equal(magic, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path)));
    }

    [Fact]
    public async Task What_an_interrupted_creation_left_under_its_temporary_name_is_removed_when_the_broker_opens()
    {
        await using var f = await BrokerFixture.StartAsync();
        var b = f.Broker;
        b.CreateTopic("jobs");
        await b.PublishAsync("jobs", Encoding.UTF8.GetBytes("job0"));
        using (b.JoinGroup("jobs", "workers"))
        using (var keeper = b.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed }))
        {
            keeper.Commit("jobs", 1);
        }

        var subscriptions = Path.Combine(f.DataDirectory, "subscriptions");
        var groups = Path.Combine(f.DataDirectory, "topics", "jobs", "groups");
        string[] leftovers =
        [
            Path.Combine(subscriptions, "lost.pos" + Creating),
            Path.Combine(groups, "lost.state" + Creating),
        ];
        await f.RestartAsync(whileClosed: () =>
        {
            foreach (var leftover in leftovers)
            {
                File.WriteAllBytes(leftover, new byte[4096]); // cut short by the crash, never renamed
            }
        });

        Assert.All(leftovers, l => Assert.False(File.Exists(l), $"{l} is left after the broker opened"));
        Assert.Equal(["keeper.pos"], Directory.GetFiles(subscriptions).Select(Path.GetFileName));
        Assert.Equal(["workers.state"], Directory.GetFiles(groups).Select(Path.GetFileName));
        Assert.DoesNotContain(f.Broker.RecoveryReports, r => r.Contains("lost", StringComparison.Ordinal));
        using var again = f.Broker.Subscribe("jobs", SubscriptionOptions.Default with { DurableName = "keeper", Start = StartPosition.Committed });
        Assert.Equal(1, again.CommittedOffset("jobs"));
    }
}
