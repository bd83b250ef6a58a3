using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using FastBroker.Testing;

namespace FastBroker.ClientTests;

/// <summary>
/// A real <c>fastbroker serve</c> child process (the fastbroker.dll built next to the tests): started on a data
/// directory and a port (0 = a free one, read from its ready line), killed with SIGKILL, frozen with SIGSTOP and thawed
/// with SIGCONT, started again on the same or another port.
/// </summary>
internal sealed partial class ServeProcess : IDisposable
{
    private const int SigCont = 18;
    private const int SigStop = 19;

    private ServeProcess(ChildProcess child, int port)
    {
        Child = child;
        Port = port;
    }

    public static string DllPath => Path.Combine(AppContext.BaseDirectory, "fastbroker.dll");

    public ChildProcess Child { get; }

    public int Port { get; }

    public string Endpoint => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Starts <c>fastbroker serve --data dir --port port --admin-port -1 extra…</c> and waits for its ready line.</summary>
    public static async Task<ServeProcess> StartAsync(string dataDirectory, int port = 0, params string[] extra)
    {
        Assert.True(File.Exists(DllPath), $"fastbroker.dll is not next to the tests: {DllPath}");

        // A restart on the same port may race the old socket's teardown: try a few times.
        for (var attempt = 1; ; attempt++)
        {
            var child = ChildProcess.StartDotnet(DllPath, ["serve", "--data", dataDirectory, "--port", port.ToString(CultureInfo.InvariantCulture), "--admin-port", "-1", .. extra]);
            await Wire.EventuallyAsync(() => child.Lines.Any(l => l.StartsWith("fastbroker listening", StringComparison.Ordinal)) || child.HasExited, "fastbroker serve listens", TimeSpan.FromSeconds(120));
            var line = child.Lines.FirstOrDefault(l => l.StartsWith("fastbroker listening", StringComparison.Ordinal));
            if (line is not null && ListeningPort().Match(line) is { Success: true } m)
            {
                return new ServeProcess(child, int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            }

            var errors = child.Errors;
            child.Dispose();
            if (attempt == 5)
            {
                Assert.Fail($"fastbroker serve did not start: {errors}");
            }
        }
    }

    /// <summary>SIGKILL, and waits until it is reaped.</summary>
    public void Kill() => Child.Kill();

    /// <summary>SIGSTOP: the process stops; its kernel still completes TCP handshakes and buffers what arrives.</summary>
    public void Freeze() => Signal(SigStop);

    /// <summary>SIGCONT.</summary>
    public void Thaw() => Signal(SigCont);

    public void Dispose()
    {
        if (!Child.HasExited)
        {
            Thaw(); // a frozen process dies of SIGKILL too, but let it run its last instructions like any other
        }

        Child.Dispose();
    }

    private void Signal(int signal)
    {
        if (KillSyscall(Child.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({Child.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillSyscall(int pid, int signal);

    [GeneratedRegex(@"listening on [^ ]+:(\d+) ")]
    private static partial Regex ListeningPort();
}
