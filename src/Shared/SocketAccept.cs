using System.Net.Sockets;

namespace FastBroker.Net;

/// <summary>The accept step every listener of the broker shares (client server, admin HTTP, replication, witness).</summary>
internal static class SocketAccept
{
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
    /// </summary>
    public static ValueTask<Socket?> NextAsync(Socket listener, CancellationToken stop, Action<string>? log = null)
        => NextAsync(listener.AcceptAsync, s_delay, stop, log);

    /// <summary>
    /// <see cref="NextAsync(Socket, CancellationToken, Action{string}?)"/> over any accept step and delay (the seam the
    /// tests drive through a sequence of failures).
    /// </summary>
    internal static async ValueTask<Socket?> NextAsync(
        Func<CancellationToken, ValueTask<Socket>> accept,
        Func<TimeSpan, CancellationToken, Task> delay,
        CancellationToken stop,
        Action<string>? log)
    {
        var failures = 0;
        var backOff = TimeSpan.Zero;
        while (true)
        {
            try
            {
                var socket = await accept(stop).ConfigureAwait(false);
                if (failures > 0)
                {
                    Log(log, $"accepting again after {failures} failed attempt(s)");
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
}
