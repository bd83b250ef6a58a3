using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FastBroker.Net;

/// <summary>
/// One source file linked into the server, the replication library and the client: a send that never blocks and
/// never waits for the runtime's socket engine, for a thread that must not stall (the journaler, a publishing caller)
/// but can save a thread wake-up by writing a small frame itself.
/// </summary>
internal static partial class SocketSendNow
{
    private const int MsgDontWait = 0x40;
    private const int MsgNoSignal = 0x4000;

    /// <summary>True where <see cref="TrySend"/> can send (Linux); elsewhere it always returns 0.</summary>
    public static bool Supported => OperatingSystem.IsLinux();

    /// <summary>
    /// Sends what the kernel takes at once (<c>send(MSG_DONTWAIT | MSG_NOSIGNAL)</c>): the number of bytes sent, 0
    /// when the send buffer is full or the socket failed (the socket's owner meets the error on its next own send).
    /// The caller must be the only sender at the time: nothing else may have a send in flight on the socket.
    /// </summary>
    public static int TrySend(Socket socket, ReadOnlySpan<byte> bytes)
    {
        if (!Supported || bytes.IsEmpty)
        {
            return 0;
        }

        var handle = socket.SafeHandle;
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added); // the descriptor cannot be closed (and reused) under the call
            var n = Send(handle.DangerousGetHandle(), ref MemoryMarshal.GetReference(bytes), bytes.Length, MsgDontWait | MsgNoSignal);
            return n > 0 ? (int)n : 0;
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "send")]
    private static partial nint Send(nint fd, ref byte buffer, nint length, int flags);
}
