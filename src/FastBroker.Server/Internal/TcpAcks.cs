using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace FastBroker.Server.Internal;

/// <summary>
/// How many bytes of a connection the peer has acknowledged (<c>tcpi_bytes_acked</c> of <c>TCP_INFO</c>, Linux 4.1+):
/// the idle check's measure of whether a client whose socket is full still takes bytes. A pending flush alone cannot
/// tell a slow reader (the window opens now and then) from one that stopped reading (it stays closed).
/// </summary>
internal static class TcpAcks
{
    private const int SolTcp = 6;
    private const int TcpInfo = 11;

    // struct tcp_info: 8 bytes of u8 fields, 24 u32 fields, then u64 pacing_rate, max_pacing_rate, bytes_acked.
    private const int BytesAckedOffset = 120;

    // Larger than any kernel's struct tcp_info so far (about 280 bytes); the kernel copies what it has.
    private const int InfoBytes = 512;

    /// <summary>The peer's acknowledged byte count; false where it cannot be read (not Linux, an old kernel, a closed socket).</summary>
    public static bool TryGet(Socket socket, out ulong bytesAcked)
    {
        bytesAcked = 0;
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        Span<byte> info = stackalloc byte[InfoBytes];
        try
        {
            var length = socket.GetRawSocketOption(SolTcp, TcpInfo, info);
            if (length < BytesAckedOffset + sizeof(ulong))
            {
                return false;
            }

            bytesAcked = MemoryMarshal.Read<ulong>(info[BytesAckedOffset..]); // host byte order, like the kernel's struct
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }
}
