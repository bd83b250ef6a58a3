using System.Collections.Concurrent;
using FastBroker.Engine;

namespace FastBroker.BrokerTests;

/// <summary>
/// The steps the <c>producers.state</c> tests share: an early producer's records pushed out of the rescan by a busy
/// one's, a copy of the data directory as a crash leaves it, the primary's <c>producers.state</c> installed in a copy
/// whose journal lacks what it names (state files reach a standby whole, ahead of the records it still lacks), the copy
/// opened as a promoted standby would open it, and the early producer's retries there.
/// </summary>
internal static class ProducerCheckpointScenario
{
    /// <summary>Publishes first: its records are pushed out of the rescan (an id no other field of the file matches).</summary>
    internal const ulong Early = 0x0E0E_0E0E_0E0E_0E07;

    /// <summary>Publishes after <see cref="Early"/>, enough to push its records out of the rescan.</summary>
    internal const ulong Busy = 0x0B0B_0B0B_0B0B_0B08;

    /// <summary>The rescan of each topic's newest records cut to 64, so that 100 records by another producer push one out of it.</summary>
    internal static BrokerOptions SmallRescan(BrokerOptions o) => o with { ProducerRecoveryRecords = 64, AllowSmallProducerRescan = true };

    /// <summary>Where <c>producers.state</c> is in the data directory <paramref name="directory"/>.</summary>
    internal static string CheckpointIn(string directory) => Path.Combine(directory, ProducerCheckpoint.FileName);

    /// <summary>
    /// <see cref="Early"/>'s sequences 0 to <paramref name="early"/> - 1 (tokens alike), then <see cref="Busy"/>'s 0 to
    /// <paramref name="busy"/> - 1 (tokens from 100), all in <c>t</c> and all confirmed.
    /// </summary>
    internal static async Task PublishEarlyThenBusyAsync(Broker broker, ClaimPublishTests.RecordingSink sink, ulong early = 10, ulong busy = 100)
    {
        ClaimPublishTests.PublishRun(broker, sink, Early, 0, early, "e");
        ClaimPublishTests.PublishRun(broker, sink, Busy, 0, busy, "b", 100);
        await sink.WaitForAsync((int)(early + busy));
    }

    /// <summary>Restarts <paramref name="f"/>, copying its data directory to <paramref name="copy"/> while it is closed.</summary>
    internal static Task RestartCopyingAsync(BrokerFixture f, string copy, Func<BrokerOptions, BrokerOptions>? configure = null) =>
        f.RestartAsync(configure ?? SmallRescan, whileClosed: () => CopyDirectory(f.DataDirectory, copy));

    /// <summary>Restarts <paramref name="f"/>, copying the <c>producers.state</c> its close wrote over <paramref name="copy"/>'s.</summary>
    internal static Task RestartCopyingCheckpointAsync(BrokerFixture f, string copy) =>
        f.RestartAsync(SmallRescan, whileClosed: () => File.Copy(CheckpointIn(f.DataDirectory), CheckpointIn(copy), overwrite: true));

    /// <summary>Restarts <paramref name="f"/>, keeping the <c>producers.state</c> its close wrote at <paramref name="kept"/> (a capture a copy will trail with).</summary>
    internal static Task RestartKeepingCheckpointAsync(BrokerFixture f, string kept, Func<BrokerOptions, BrokerOptions>? configure = null) =>
        f.RestartAsync(configure ?? SmallRescan, whileClosed: () => File.Copy(CheckpointIn(f.DataDirectory), kept));

    /// <summary>Moves the capture kept at <paramref name="kept"/> over <paramref name="copy"/>'s <c>producers.state</c>.</summary>
    internal static void InstallCheckpoint(string kept, string copy)
    {
        File.Copy(kept, CheckpointIn(copy), overwrite: true);
        File.Delete(kept);
    }

    /// <summary>Opens the copy at <paramref name="copy"/> (with <see cref="SmallRescan"/> unless told) logging to <paramref name="log"/>.</summary>
    internal static async Task<Broker> OpenCopyAsync(string copy, ConcurrentQueue<string> log, Func<BrokerOptions, BrokerOptions>? configure = null) =>
        await Broker.OpenAsync((configure ?? SmallRescan)(BrokerFixture.Options(copy)) with { Log = log.Enqueue });

    /// <summary>Retries <see cref="Early"/>'s <paramref name="sequences"/> in <paramref name="topic"/>: see <see cref="RetryAsync"/>.</summary>
    internal static Task<List<ClaimPublishTests.Outcome>> RetryEarlyAsync(Broker broker, string topic, params ulong[] sequences) =>
        RetryAsync(broker, topic, Early, "e", sequences);

    /// <summary>
    /// Retries <paramref name="producer"/>'s <paramref name="sequences"/> in <paramref name="topic"/> of
    /// <paramref name="broker"/> (payload <paramref name="prefix"/> and the sequence, tokens 1, 2, …): their outcomes in
    /// that order.
    /// </summary>
    internal static async Task<List<ClaimPublishTests.Outcome>> RetryAsync(Broker broker, string topic, ulong producer, string prefix, params ulong[] sequences)
    {
        var sink = new ClaimPublishTests.RecordingSink();
        for (var i = 0; i < sequences.Length; i++)
        {
            ClaimPublishTests.PublishIdempotent(broker, sink, producer, sequences[i], topic, $"{prefix}{sequences[i]}", (ulong)i + 1);
        }

        return (await sink.WaitForAsync(sequences.Length)).OrderBy(o => o.Token).ToList();
    }

    /// <summary>An outcome for a failure message: where it was stored, or its error.</summary>
    internal static string Describe(ClaimPublishTests.Outcome o) =>
        o.Error == BrokerErrorCode.None ? $"offset {o.Offset} (duplicate {o.Duplicate})" : $"{o.Error} {o.Reason}";

    /// <summary>Copies a running broker's data directory as a crash leaves it (no temporary files, no lock).</summary>
    internal static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            // The journals' and the directory's lock files are held open (and locked) by the running broker: a crash
            // leaves them unlocked.
            if (!file.EndsWith(".tmp", StringComparison.Ordinal) && Path.GetFileName(file) is not ("journal.lock" or "broker.lock"))
            {
                File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
            }
        }

        foreach (var dir in Directory.EnumerateDirectories(from))
        {
            CopyDirectory(dir, Path.Combine(to, Path.GetFileName(dir)));
        }
    }
}
