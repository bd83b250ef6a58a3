using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FastBroker.Net;

/// <summary>
/// One source file linked into the client: waits in <c>poll(2)</c> until a socket has something to read, so that a
/// dedicated thread is woken by the kernel itself. Once a .NET socket has done one async operation its descriptor is
/// non-blocking for good, and a synchronous <c>Receive</c> that finds nothing waits for the runtime's epoll thread to
/// signal it: two thread wake-ups per arrival instead of one. Waiting here first and reading after means the read
/// always finds data and completes at once.
/// </summary>
internal static partial class SocketPoll
{
    private const short PollIn = 0x001;
    private const int EIntr = 4;

    /// <summary>True where <see cref="WaitReadable"/> waits (Linux); elsewhere it returns true at once.</summary>
    public static bool Supported => OperatingSystem.IsLinux();

    /// <summary>
    /// Blocks until the socket is readable, closed by the peer or failed (true: the next read returns data, 0 or the
    /// error), or until <paramref name="timeoutMs"/> passes (false). Throws <see cref="ObjectDisposedException"/> once
    /// the socket is disposed.
    /// </summary>
    public static bool WaitReadable(Socket socket, int timeoutMs)
    {
        if (!Supported)
        {
            return true;
        }

        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added); // the descriptor cannot be closed (and reused) while polled
            var fd = new PollFd { Fd = (int)handle.DangerousGetHandle(), Events = PollIn };
            var n = Poll(ref fd, 1, timeoutMs);
            if (n < 0)
            {
                return Marshal.GetLastPInvokeError() != EIntr; // interrupted: the caller polls again; else read the error
            }

            return n > 0;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, nuint count, int timeoutMs);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }
}
