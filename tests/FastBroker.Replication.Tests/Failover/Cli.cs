using System.Globalization;
using FastBroker.Journal;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>The real <c>fastbroker</c> executable (built next to the tests through the project reference), run as child processes.</summary>
internal static class Cli
{
    public static string DllPath => Path.Combine(AppContext.BaseDirectory, "fastbroker.dll");

    /// <summary>
    /// Starts <c>fastbroker args…</c> and waits for the stdout line starting with <paramref name="readyPrefix"/>. A child
    /// that exits first is started again (a restart on the same ports may race the old sockets' teardown, and another
    /// process may have taken a port we picked); the last one's stderr is in the failure.
    /// </summary>
    public static async Task<ChildProcess> StartAsync(string readyPrefix, IReadOnlyList<string> args)
    {
        Assert.True(File.Exists(DllPath), $"fastbroker.dll is not next to the tests: {DllPath}");
        var errors = "";
        for (var attempt = 1; attempt <= 5; attempt++)
        {
            var child = ChildProcess.StartDotnet(DllPath, [.. args]);
            var ready = await WaitAsync(() => child.HasExited || child.Lines.Any(l => l.StartsWith(readyPrefix, StringComparison.Ordinal)), TimeSpan.FromSeconds(60));
            if (ready && !child.HasExited)
            {
                return child;
            }

            child.Kill();
            errors = $"exit {(child.HasExited ? child.ExitCode : -1)}: {child.Errors}";
            child.Dispose();
        }

        throw new InvalidOperationException($"fastbroker {string.Join(' ', args)} did not start: {errors}");
    }

    /// <summary>A lone <c>fastbroker serve</c> on <paramref name="port"/> with no admin port, plus <paramref name="extra"/> options, once it listens.</summary>
    public static Task<ChildProcess> ServeAsync(string dataDirectory, int port, params string[] extra) =>
        StartAsync("fastbroker listening", ["serve", "--data", dataDirectory, "--port", port.ToString(CultureInfo.InvariantCulture), "--admin-port", "-1", .. extra]);

    /// <summary>The <c>--server</c> value of a server on 127.0.0.1:<paramref name="port"/>.</summary>
    public static string Address(int port) => $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Writes a journal holding one record ("hello") at <c>topics/orders/journal</c> under <paramref name="root"/>: its path.</summary>
    public static string WriteOneRecordJournal(TempDirectory root)
    {
        var journal = root.Combine("topics", "orders", "journal");
        using var log = JournalLog.Open(journal, JournalOptions.Default with { SegmentSize = 64 << 10, Durability = DurabilityPolicy.None });
        Assert.True(log.TryAppend("hello"u8, out _));
        log.Commit();
        return journal;
    }

    /// <summary>Runs <c>fastbroker args…</c> to its end and returns its stdout lines.</summary>
    public static async Task<IReadOnlyList<string>> RunAsync(params string[] args)
    {
        using var child = ChildProcess.StartDotnet(DllPath, args);
        Assert.True(await WaitAsync(() => child.HasExited, TimeSpan.FromSeconds(60)), $"fastbroker {string.Join(' ', args)} did not finish");
        child.WaitForExit(TimeSpan.FromSeconds(10)); // drains the output readers
        Assert.True(child.ExitCode == 0, $"fastbroker {string.Join(' ', args)}: exit {child.ExitCode}: {child.Errors}");
        return [.. child.Lines];
    }

    /// <summary>The object of group <paramref name="name"/> in <c>fastbroker groups topic --json</c> (a copy).</summary>
    public static async Task<System.Text.Json.JsonElement> GroupAsync(string server, string topic, string name)
    {
        var json = string.Join('\n', await RunAsync("groups", topic, "--json", "--server", server));
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        foreach (var g in doc.RootElement.GetProperty("groups").EnumerateArray())
        {
            if (g.GetProperty("group").GetString() == name)
            {
                return g.Clone();
            }
        }

        throw new InvalidOperationException($"no group {name} in {json}");
    }

    private static async Task<bool> WaitAsync(Func<bool> condition, TimeSpan timeout)
    {
        try
        {
            await Eventually.TrueAsync(condition, "child process", timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
