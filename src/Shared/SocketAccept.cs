using System.Net.Sockets;

namespace FastBroker.Net;

/// <summary>The accept step every listener of the broker shares (client server, admin HTTP, replication, witness).</summary>
internal static class SocketAccept
{
    /// <summary>
    /// Accepts the next connection; null once <paramref name="stop"/> is requested or the listener is disposed. A
    /// transient failure (the peer reset before accept, out of descriptors) goes to <paramref name="onError"/> and the
    /// wait goes on: it never ends a listener.
    /// </summary>
    public static async ValueTask<Socket?> NextAsync(Socket listener, CancellationToken stop, Action<SocketException>? onError = null)
    {
        while (true)
        {
            try
            {
                return await listener.AcceptAsync(stop).ConfigureAwait(false);
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return null;
            }
            catch (ObjectDisposedException)
            {
                return null;
            }
            catch (SocketException e)
            {
                onError?.Invoke(e);
            }
        }
    }
}
