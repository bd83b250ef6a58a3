using System.Net;
using System.Net.Sockets;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Free loopback ports for child processes that must be told their ports up front (a pair's nodes name each other): a
/// port that binds now, released at once. A port is never handed out twice by this process, so two nodes of one test
/// cannot collide even if the kernel reuses a just-released port.
/// </summary>
/// <remarks>
/// Ports come from below the kernel's ephemeral range (<c>net.ipv4.ip_local_port_range</c>), which the kernel never
/// hands to an outgoing connection. Before, they came from binding port 0, that is from the ephemeral range, and any
/// connection made meanwhile by any process (this suite makes thousands) could take the port as its local end
/// before the node bound it: the node then failed to start with "address in use".
/// </remarks>
internal static class FreePort
{
    private static readonly HashSet<int> s_given = [];
    private static readonly (int Low, int High) s_range = BelowEphemeralRange();

    public static int Next()
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = s_range.High > s_range.Low ? Random.Shared.Next(s_range.Low, s_range.High) : 0;
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            }
            catch (SocketException)
            {
                continue; // taken (a listener, or another test process's node)
            }

            port = ((IPEndPoint)socket.LocalEndPoint!).Port;
            lock (s_given)
            {
                if (s_given.Add(port))
                {
                    return port;
                }
            }
        }

        throw new InvalidOperationException("no free loopback port in 1,000 tries");
    }

    /// <summary>[10000, first ephemeral port): empty (so port 0) if the range starts too low to leave room.</summary>
    private static (int, int) BelowEphemeralRange()
    {
        var first = 32768; // Linux's default
        try
        {
            var fields = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            first = int.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }

        return first > 11000 ? (10000, first) : (0, 0);
    }
}
