using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ClientTests;

/// <summary>The FastBroker.Server.TestHost child process: a real server that a test can kill -9 and start again.</summary>
internal sealed class HostProcess : IDisposable
{
    private HostProcess(ChildProcess child, int port)
    {
        Child = child;
        Port = port;
    }

    public static string HostPath => Path.Combine(AppContext.BaseDirectory, "FastBroker.Server.TestHost.dll");

    public ChildProcess Child { get; }

    public int Port { get; }

    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>Starts the host on <paramref name="dataDirectory"/> and waits for its LISTENING line (port 0 = a free one).</summary>
    public static Task<HostProcess> StartAsync(string dataDirectory, int port = 0, params string[] extra)
        => StartAsync(null, dataDirectory, port, extra);

    /// <summary>
    /// <see cref="StartAsync(string, int, string[])"/> with at most <paramref name="openFileLimit"/> descriptors open
    /// in the host at once (<c>ulimit -n</c>; null = the test's own limit).
    /// </summary>
    public static async Task<HostProcess> StartAsync(int? openFileLimit, string dataDirectory, int port = 0, params string[] extra)
    {
        Assert.True(File.Exists(HostPath), $"test host not built next to the tests: {HostPath}");

        // A restart on the same port may race the old socket's teardown: try a few times.
        for (var attempt = 1; ; attempt++)
        {
            var child = ChildProcess.StartDotnet(openFileLimit, HostPath, [dataDirectory, port.ToString(CultureInfo.InvariantCulture), .. extra]);
            await Wire.EventuallyAsync(() => child.Lines.Any(l => l.StartsWith("LISTENING ", StringComparison.Ordinal)) || child.HasExited, "the test host listens", TimeSpan.FromSeconds(120));
            var line = child.Lines.FirstOrDefault(l => l.StartsWith("LISTENING ", StringComparison.Ordinal));
            if (line is not null)
            {
                return new HostProcess(child, int.Parse(line["LISTENING ".Length..], CultureInfo.InvariantCulture));
            }

            var errors = child.Errors;
            child.Dispose();
            if (attempt == 5)
            {
                Assert.Fail($"the test host did not start: {errors}");
            }
        }
    }

    /// <summary>SIGKILL.</summary>
    public void Kill() => Child.Kill();

    public void Dispose() => Child.Dispose();
}
