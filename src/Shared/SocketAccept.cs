using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FastBroker.Net;

/// <summary>The accept step every listener of the broker shares (client server, admin HTTP, replication, witness).</summary>
internal static partial class SocketAccept
{
    /// <summary>
    /// Descriptors no connection may take: a connection accepted on one of the last 64 the process may open
    /// (descriptor number at or above the soft RLIMIT_NOFILE minus 64) is closed at once. The runtime needs free
    /// descriptors to go on at all (it ends the process with "Out of memory." when it finds none): run with
    /// <c>dotnet</c>, each assembly loaded on first use holds two; the journal opens segment files. The process's own
    /// (perf-reports/descriptors.md): 13 for the native-AOT <c>fastbroker</c> serving, 79 run with <c>dotnet</c>, 83
    /// once a publish has loaded its assemblies, neither growing with threads (50 more threads of a .NET 10 process
    /// took 8 descriptors); 64 covers those and the assemblies of the paths not taken yet.
    /// </summary>
    internal const int ReservedDescriptors = 64;

    private const int RlimitNoFile = 7; // Linux

    /// <summary>The first wait after a failed accept (Go's net/http Server.Serve uses the same steps).</summary>
    internal static readonly TimeSpan FirstBackOff = TimeSpan.FromMilliseconds(5);

    /// <summary>The longest wait: a listener out of descriptors tries once a second and logs at most once a second.</summary>
    internal static readonly TimeSpan MaxBackOff = TimeSpan.FromSeconds(1);

    private static readonly Func<TimeSpan, CancellationToken, Task> s_delay = Task.Delay;

    /// <summary>
    /// Accepts the next connection; null once <paramref name="stop"/> is requested or the listener is disposed. A
    /// failure never ends a listener. A connection the peer reset before it was accepted is skipped at once. Any other
    /// failure (out of descriptors: EMFILE/ENFILE, out of buffers or memory: ENOBUFS/ENOMEM) repeats at once while it
    /// lasts, so the wait goes on after a back-off of 5 ms doubling to 1 s (reset by the next accepted connection)
    /// instead of spinning; <paramref name="log"/> gets the first failure, then one line per 1 s step with the count.
    /// A connection accepted on one of the <see cref="ReservedDescriptors"/> is closed at once (Linux; a flood of
    /// connections must not leave the process without the descriptors it needs to live), logged at the 1st, 2nd, 4th,
    /// 8th… refusal in a row.
    /// </summary>
    public static ValueTask<Socket?> NextAsync(Socket listener, CancellationToken stop, Action<string>? log = null)
        => NextAsync(listener.AcceptAsync, s_delay, stop, log, InReserve);

    /// <summary>
    /// <see cref="NextAsync(Socket, CancellationToken, Action{string}?)"/> over any accept step and delay (the seam the
    /// tests drive through a sequence of failures); <paramref name="refuse"/> gives the reason to close an accepted
    /// socket at once, or null to keep it.
    /// </summary>
    internal static async ValueTask<Socket?> NextAsync(
        Func<CancellationToken, ValueTask<Socket>> accept,
        Func<TimeSpan, CancellationToken, Task> delay,
        CancellationToken stop,
        Action<string>? log,
        Func<Socket, string?>? refuse = null)
    {
        var failures = 0;
        var refused = 0;
        var backOff = TimeSpan.Zero;
        while (true)
        {
            try
            {
                var socket = await accept(stop).ConfigureAwait(false);
                if (refuse?.Invoke(socket) is { } reason)
                {
                    socket.Dispose();
                    refused++;
                    if ((refused & (refused - 1)) == 0)
                    {
                        Log(log, $"closed a connection at accept: {reason} ({refused} in a row)");
                    }

                    continue;
                }

                if (failures > 0 || refused > 0)
                {
                    Log(log, $"accepting again after {failures} failed attempt(s) and {refused} connection(s) closed at accept");
                }

                return socket;
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return null;
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                // That one connection is gone, the next one may be fine: no wait.
                Log(log, $"accept failed: {e.SocketErrorCode}: {e.Message}");
            }
            catch (SocketException e)
            {
                failures++;
                backOff = backOff == TimeSpan.Zero ? FirstBackOff : TimeSpan.FromTicks(Math.Min(backOff.Ticks * 2, MaxBackOff.Ticks));
                if (failures == 1 || backOff == MaxBackOff)
                {
                    Log(log, $"accept failed: {e.SocketErrorCode}: {e.Message} ({failures} in a row); retrying in {(long)backOff.TotalMilliseconds} ms");
                }

                try
                {
                    await delay(backOff, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return null;
                }
            }
        }
    }

    private static void Log(Action<string>? log, string line)
    {
        try
        {
            log?.Invoke(line);
        }
        catch (Exception)
        {
        }
    }

    /// <summary>The reason to close <paramref name="socket"/>: its descriptor is one of the <see cref="ReservedDescriptors"/>.</summary>
    private static string? InReserve(Socket socket)
    {
        if (!OperatingSystem.IsLinux() || GetRLimit(RlimitNoFile, out var limit) != 0 || limit.Current > int.MaxValue)
        {
            return null; // not Linux, or no limit to speak of (RLIM_INFINITY is ulong.MaxValue)
        }

        var fd = (long)socket.SafeHandle.DangerousGetHandle();
        return fd >= (long)limit.Current - ReservedDescriptors
            ? $"out of descriptors (descriptor {fd}; the last {ReservedDescriptors} below the limit of {limit.Current} are kept for the process)"
            : null;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit")]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }
}
