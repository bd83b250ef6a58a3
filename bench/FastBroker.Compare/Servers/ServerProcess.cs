using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using FastBroker.Bench.Pair;

namespace FastBroker.Compare.Servers;

/// <summary>
/// A competitor's server as a child process of this tool: its own temp directory, a loopback port, output kept as the
/// last lines for error messages. Ready once a TCP connect to the port succeeds (within a deadline); on dispose the
/// process tree is killed (SIGKILL), then every process still marked as this server's (<see cref="Orphans.KillMarked"/>:
/// one forked while the tree was walked, RabbitMQ's beam.smp by its node name), an optional clean-up runs (RabbitMQ's
/// epmd) and the directory is deleted. Every live one is listed so that Ctrl-C and process exit kill them too
/// (<see cref="ChildProcesses"/>); a server left by a <c>kill -9</c> of the tool is reaped by its next start
/// (<see cref="Orphans.Reap"/>).
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly PairProcess _child;
    private readonly Action? _afterKill;
    private readonly string? _commandLineMark;
    private readonly Lock _killLock = new();
    private bool _killed;

    private ServerProcess(PairProcess child, string directory, int port, Action? afterKill, string? commandLineMark)
    {
        _child = child;
        Directory = directory;
        Port = port;
        _afterKill = afterKill;
        _commandLineMark = commandLineMark;
        ChildProcesses.Add(this, Kill);
    }

    /// <summary>What the tool calls it ("redis", "nats", "rabbitmq").</summary>
    public string Name => _child.Name;

    /// <summary>The server's data and config directory (deleted on dispose).</summary>
    public string Directory { get; }

    /// <summary>The loopback port its clients connect to.</summary>
    public int Port { get; }

    /// <summary>The OS process id of the started program.</summary>
    public int ProcessId => _child.Id;

    /// <summary>True once the started program has ended.</summary>
    public bool HasExited => _child.HasExited;

    /// <summary>
    /// Starts <paramref name="fileName"/> with <paramref name="arguments"/> and <paramref name="environment"/> and waits
    /// until 127.0.0.1:<paramref name="port"/> accepts a connection; kills it, deletes <paramref name="directory"/> and
    /// throws with its output if that takes longer than <paramref name="readyWithin"/> or it exits first. Every process
    /// of the server carries <paramref name="directory"/> and this process's pid in its environment
    /// (<see cref="Orphans.DirectoryVariable"/>, <see cref="Orphans.OwnerVariable"/>); on kill, a process whose command
    /// line contains <paramref name="commandLineMark"/> (RabbitMQ's node name) is killed too.
    /// </summary>
    public static async Task<ServerProcess> StartAsync(
        string name,
        string fileName,
        IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string> environment,
        string directory,
        int port,
        TimeSpan readyWithin,
        Action? afterKill = null,
        string? commandLineMark = null,
        CancellationToken cancellationToken = default)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory,
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment)
        {
            psi.Environment[k] = v;
        }

        psi.Environment[Orphans.DirectoryVariable] = directory;
        psi.Environment[Orphans.OwnerVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

        // The whole tree on a kill: RabbitMQ's script → erl → beam.smp → children.
        var server = ChildProcesses.Start(() => new ServerProcess(PairProcess.Start(psi, name, killTree: true), directory, port, afterKill, commandLineMark));
        try
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(readyWithin.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (await CanConnectAsync(port).ConfigureAwait(false))
                {
                    return server;
                }

                if (server.HasExited)
                {
                    throw new InvalidOperationException($"{name} ({fileName}) exited before listening on 127.0.0.1:{port}:{Environment.NewLine}{server.Tail()}");
                }

                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new InvalidOperationException($"{name} ({fileName}) did not accept connections on 127.0.0.1:{port} within {readyWithin.TotalSeconds:0} s:{Environment.NewLine}{server.Tail()}");
                }

                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The last lines the server printed.</summary>
    public string Tail() => _child.Tail();

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Kill();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// SIGKILL to the whole tree and to whatever still carries this server's marks, before waiting on anything; then
    /// reaped (bounded), the clean-up and the directory. A second caller (a signal handler and the scenario's dispose,
    /// or process exit) waits until the first is done: the process must not exit half way through.
    /// </summary>
    private void Kill()
    {
        lock (_killLock)
        {
            if (_killed)
            {
                return;
            }

            _child.SignalKill();
            Orphans.KillMarked(Directory, _commandLineMark);
            _child.WaitReaped();
            _child.Dispose();
            _afterKill?.Invoke();
            DeleteDirectory(Directory);
            _killed = true;
            ChildProcesses.Remove(this);
        }
    }

    /// <summary>Deletes a directory tree, retrying briefly while a dying child still writes into it.</summary>
    internal static void DeleteDirectory(string directory)
    {
        for (var attempt = 0; attempt < 20 && System.IO.Directory.Exists(directory); attempt++)
        {
            try
            {
                System.IO.Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Thread.Sleep(50);
            }
        }
    }

    private static async Task<bool> CanConnectAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
