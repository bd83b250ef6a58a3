using System.Runtime.Versioning;
using System.Security.Cryptography;
using FastBroker.Engine;
using FastBroker.Testing;

namespace FastBroker.BrokerTests;

/// <summary>
/// A failure on disk while the broker opens its topics (a topic's journal that is a file, a <c>topic.meta</c> that is
/// a directory, a topics directory that is no directory, a topic directory the broker may not read) refuses the open
/// with a <see cref="BrokerException"/> (<see cref="BrokerErrorCode.StorageError"/>) naming the topic or directory, the
/// path and the cause, the cause kept inside; the topics already opened are closed (the repaired directory opens again
/// in this process, where a journal left open would still hold its lock) and nothing on disk is changed. Before, the
/// raw <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/> escaped <c>Broker.OpenAsync</c>.
/// </summary>
[UnsupportedOSPlatform("windows")] // file modes; the broker runs on Linux
public class TopicOpenErrorTests
{
    private static readonly string[] s_others = ["alpha", "beta", "omega", "zeta"];
    private static readonly TopicOptions s_small = TopicOptions.Default with { SegmentBytes = 1L << 20, MaxMessageBytes = 64 * 1024 };

    [Fact]
    public async Task A_topic_whose_journal_is_a_file_refuses_the_open_naming_the_topic_and_changes_nothing_on_disk()
    {
        await using var f = await StartWithTopicsAsync();
        var dir = Path.Combine(f.DataDirectory, "topics", "ledger");
        var journal = Path.Combine(dir, TopicRegistry.JournalDirectory);
        var aside = Path.Combine(f.DataDirectory, "ledger-journal");
        Dictionary<string, string>? before = null;

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () =>
        {
            Directory.Move(journal, aside);
            File.WriteAllText(journal, "not a journal");
            before = Tree(f.DataDirectory);
        }));

        AssertRefused(e, $"topic 'ledger' ({dir})");
        Assert.Equal(before, Tree(f.DataDirectory));
        await ReopensRepairedAsync(f, () =>
        {
            File.Delete(journal);
            Directory.Move(aside, journal);
        });
    }

    [Fact]
    public async Task A_topic_meta_that_is_a_directory_refuses_the_open_naming_the_file_and_changes_nothing_on_disk()
    {
        // A transient topic has no journal: its topic.meta alone says it exists. Before, a directory in its place made
        // the open skip the topic as a directory holding what no creation makes, and the broker ran without it.
        await using var f = await StartWithTopicsAsync(s_small with { Persistent = false });
        var meta = Path.Combine(f.DataDirectory, "topics", "ledger", TopicRegistry.MetaFile);
        var saved = File.ReadAllText(meta);
        Dictionary<string, string>? before = null;

        var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () =>
        {
            File.Delete(meta);
            Directory.CreateDirectory(meta);
            before = Tree(f.DataDirectory);
        }));

        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains("topic 'ledger'", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{meta}' is a directory", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Tree(f.DataDirectory));
        await ReopensRepairedAsync(f, () =>
        {
            Directory.Delete(meta);
            File.WriteAllText(meta, saved);
        });
    }

    [Fact]
    public async Task A_topics_directory_that_is_a_dangling_link_refuses_the_open_naming_it()
    {
        using var dir = new TempDirectory("fastbroker-topics-link");
        var topics = dir.Combine("topics");
        File.CreateSymbolicLink(topics, dir.Combine("gone"));

        var e = await Assert.ThrowsAsync<BrokerException>(async () => await (await Broker.OpenAsync(BrokerFixture.Options(dir.Path))).DisposeAsync());
        AssertRefused(e, $"the topics directory '{topics}'");
        Assert.Equal(dir.Combine("gone"), new FileInfo(topics).LinkTarget);
        Assert.False(Path.Exists(dir.Combine("gone")), "the failed open created nothing behind the link");
    }

    /// <summary>
    /// A topic directory the broker may not read or search (mode 000): before, <c>File.Exists</c> answered false for
    /// its <c>topic.meta</c>, the directory was taken for a creation's leftover, and its listing threw
    /// <see cref="UnauthorizedAccessException"/> out of the open. Permissions do not bite a privileged user (root):
    /// there the test checks that and ends, the other tests covering the same path.
    /// </summary>
    [Fact]
    public async Task A_topic_directory_the_broker_may_not_read_refuses_the_open_naming_the_topic()
    {
        await using var f = await StartWithTopicsAsync();
        var dir = Path.Combine(f.DataDirectory, "topics", "ledger");
        if (!PermissionsBite(f.DataDirectory))
        {
            return;
        }

        Dictionary<string, string>? before = null;
        var mode = File.GetUnixFileMode(dir);
        try
        {
            var e = await Assert.ThrowsAsync<BrokerException>(() => f.RestartAsync(whileClosed: () =>
            {
                before = Tree(f.DataDirectory);
                File.SetUnixFileMode(dir, UnixFileMode.None);
            }));
            AssertRefused(e, $"topic 'ledger' ({dir})");
        }
        finally
        {
            File.SetUnixFileMode(dir, mode);
        }

        Assert.Equal(before, Tree(f.DataDirectory));
        await ReopensRepairedAsync(f, () => { });
    }

    private static async Task<BrokerFixture> StartWithTopicsAsync(TopicOptions? ledger = null)
    {
        var f = await BrokerFixture.StartAsync();
        f.Broker.CreateTopic("ledger", ledger ?? s_small);
        foreach (var other in s_others)
        {
            f.Broker.CreateTopic(other, s_small);
            Assert.Equal(0, await f.Broker.PublishAsync(other, "kept"u8.ToArray()));
        }

        return f;
    }

    private static void AssertRefused(BrokerException e, string named)
    {
        Assert.Equal(BrokerErrorCode.StorageError, e.Code);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
        Assert.True(e.InnerException is IOException or UnauthorizedAccessException, $"the cause is kept inside: {e}");
        Assert.Contains(e.InnerException!.Message, e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Repairs the directory and opens it again in this process: every topic is there with what it held, so none of
    /// the journals the failed open had opened was left open (its lock would refuse this open).
    /// </summary>
    private static async Task ReopensRepairedAsync(BrokerFixture f, Action repair)
    {
        repair();
        await f.RestartAsync();
        Assert.True(f.Broker.TopicExists("ledger"));
        foreach (var other in s_others)
        {
            Assert.Equal(1, f.Broker.GetSnapshot().Topics.Single(t => t.Name == other).Head);
        }
    }

    /// <summary>Every entry under <paramref name="root"/>: a directory, a link with its target, or a file with its length and hash.</summary>
    internal static Dictionary<string, string> Tree(string root)
    {
        var tree = new Dictionary<string, string>(StringComparer.Ordinal);
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 };
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", options))
        {
            var relative = Path.GetRelativePath(root, entry.FullName);
            tree[relative] = entry.LinkTarget is { } target ? $"link to {target}"
                : entry is DirectoryInfo ? "directory"
                : $"{((FileInfo)entry).Length} bytes, sha256 {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(entry.FullName)))}";
        }

        return tree;
    }

    /// <summary>Whether a file of mode 000 refuses this process (false for root, whom permissions do not bind).</summary>
    private static bool PermissionsBite(string scratch)
    {
        var probe = Path.Combine(scratch, "permission-probe");
        File.WriteAllText(probe, "x");
        File.SetUnixFileMode(probe, UnixFileMode.None);
        try
        {
            File.ReadAllText(probe);
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
        finally
        {
            File.Delete(probe);
        }
    }
}
