using System.Net;
using System.Net.Sockets;

namespace FastBroker.Net;

/// <summary>
/// One source file linked into the client and the replication library: a synchronous connect, so that the socket's
/// descriptor stays blocking at the OS level. An async connect (like any async operation) makes it non-blocking for
/// good and registers it with the runtime's epoll thread, which is then woken by every arrival as well as the thread
/// that reads: one more thread wake-up per message for a socket read by a dedicated thread.
/// </summary>
internal static class BlockingConnect
{
    /// <summary>
    /// Connects <paramref name="socket"/> to <paramref name="endPoint"/> on the calling thread (a
    /// <see cref="DnsEndPoint"/> tries each address). When <paramref name="cancellationToken"/> fires first, the socket
    /// is closed under the pending connect and <see cref="OperationCanceledException"/> is thrown; the socket is then
    /// unusable.
    /// </summary>
    public static void Connect(Socket socket, EndPoint endPoint, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var attempt = new Attempt(socket);
        using (cancellationToken.Register(static a => ((Attempt)a!).Cancel(), attempt))
        {
            try
            {
                socket.Connect(endPoint);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException && attempt.Canceled)
            {
                throw new OperationCanceledException("the connect was cancelled", ex, cancellationToken);
            }
        }

        if (!attempt.Complete())
        {
            throw new OperationCanceledException("the connect was cancelled", cancellationToken);
        }
    }

    private sealed class Attempt(Socket socket)
    {
        private const int Pending = 0, Connected = 1, Cancelled = 2;
        private int _state;

        public bool Canceled => Volatile.Read(ref _state) == Cancelled;

        public void Cancel()
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Pending) == Pending)
            {
                socket.Dispose();
            }
        }

        /// <summary>False when the cancellation won (the socket is closed).</summary>
        public bool Complete() => Interlocked.CompareExchange(ref _state, Connected, Pending) == Pending;
    }
}
