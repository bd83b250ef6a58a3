using System.Text.RegularExpressions;
using FastBroker.Bench.Pair;

namespace FastBroker.Bench.EndToEnd;

/// <summary>
/// `fastbroker serve` as a child process on a temporary data directory and a free loopback port: the server the way
/// users run it (its own process and thread pool, its socket reads inline on the runtime's socket thread), with the
/// load generator in this process on the same cores. Killed (SIGKILL) and its directory deleted on dispose.
/// </summary>
internal sealed partial class ServeChild : IAsyncDisposable
{
    private readonly PairProcess _process;
    private readonly string _dir;

    private ServeChild(PairProcess process, string dir, string endpoint)
    {
        _process = process;
        _dir = dir;
        Endpoint = endpoint;
    }

    /// <summary>host:port of the child's protocol listener.</summary>
    public string Endpoint { get; }

    /// <summary>Starts the child (with <paramref name="extraArguments"/> after its own, e.g. <c>--fsync</c>) and waits (up to 60 s) for its "fastbroker listening on …" line.</summary>
    public static async Task<ServeChild> StartAsync(FastBrokerExecutable executable, string? workDirectory, IReadOnlyList<string>? extraArguments = null)
    {
        var dir = Path.Combine(workDirectory ?? Path.GetTempPath(), "fastbroker-bench-serve-" + Guid.NewGuid().ToString("N"));
        var process = PairProcess.Start(executable, "serve", ["serve", "--data", dir, "--port", "0", "--admin-port", "-1", "--quiet", .. extraArguments ?? []]);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (ListeningLine().Match(process.Tail()) is { Success: true } m)
            {
                return new ServeChild(process, dir, m.Groups[1].Value);
            }

            if (process.HasExited)
            {
                break;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        var tail = process.Tail();
        process.Dispose();
        Delete(dir);
        throw new InvalidOperationException($"`{executable} serve` did not start listening within 60 s:{Environment.NewLine}{tail}");
    }

    public ValueTask DisposeAsync()
    {
        _process.Dispose();
        Delete(_dir);
        return ValueTask.CompletedTask;
    }

    private static void Delete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [GeneratedRegex(@"fastbroker listening on (\S+) ")]
    private static partial Regex ListeningLine();
}
