using System.Net;
using System.Net.Sockets;

namespace FastBroker.ReplicationTests.Failover;

/// <summary>
/// Free loopback ports for child processes that must be told their ports up front (a pair's nodes name each other):
/// bind port 0, read it, release it. A port is never handed out twice by this process, so two nodes of one test
/// cannot collide even if the kernel reuses a just-released port.
/// </summary>
internal static class FreePort
{
    private static readonly HashSet<int> s_given = [];

    public static int Next()
    {
        while (true)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
            lock (s_given)
            {
                if (s_given.Add(port))
                {
                    return port;
                }
            }
        }
    }
}
