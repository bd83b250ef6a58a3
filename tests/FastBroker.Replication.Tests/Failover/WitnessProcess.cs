using System.Globalization;
using FastBroker.Testing;

namespace FastBroker.ReplicationTests.Failover;

/// <summary><c>fastbroker witness</c> as a child process on a free port; its stderr logs every grant and denial.</summary>
internal sealed class WitnessProcess : IDisposable
{
    private readonly ChildProcess _child;

    private WitnessProcess(ChildProcess child, int port)
    {
        _child = child;
        Port = port;
    }

    public int Port { get; }

    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>What the witness logged (grants, denials).</summary>
    public string Log => _child.Errors;

    public static async Task<WitnessProcess> StartAsync(string dataDirectory)
    {
        var port = FreePort.Next();
        var child = await Cli.StartAsync("witness listening on", ["witness", "--port", port.ToString(CultureInfo.InvariantCulture), "--data", dataDirectory]);
        return new WitnessProcess(child, port);
    }

    public void Dispose() => _child.Dispose();
}
