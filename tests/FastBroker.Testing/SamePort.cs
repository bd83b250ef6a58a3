using System.Diagnostics;
using System.Net.Sockets;

namespace FastBroker.Testing;

/// <summary>
/// Starts a listener again on the port a test's earlier listener held (a server restart). The port came from a bind
/// to port 0, so it lies in the ephemeral range, and between the stop and the new bind it is free: any outgoing
/// connection on the machine (another test process's, or a client of the test itself reconnecting meanwhile) may
/// draw it as its source port and hold it for as long as that connection lives. The bind then fails with
/// <see cref="SocketError.AddressAlreadyInUse"/> (once under CI, in a client reconnect test); this tries again until
/// the deadline. Bind failures for any other reason are not retried.
/// </summary>
public static class SamePort
{
    /// <summary>Runs <paramref name="start"/> until it does not fail with AddressAlreadyInUse, or the deadline passes.</summary>
    /// <exception cref="SocketException">The port was still in use at the deadline (the last failure).</exception>
    public static async Task<T> RebindAsync<T>(Func<Task<T>> start, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(start);
        var limit = timeout ?? Eventually.DefaultTimeout;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await start().ConfigureAwait(false);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && sw.Elapsed < limit)
            {
                await Task.Delay(20).ConfigureAwait(false); // polling interval until the port's borrower lets go, under a deadline
            }
        }
    }
}
