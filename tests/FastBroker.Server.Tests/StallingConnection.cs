using System.Buffers;
using System.Net.Sockets;
using FastBroker.Protocol;
using FastBroker.Testing;

namespace FastBroker.ServerTests;

/// <summary>HELLO, then PINGs whose PONGs it never reads: the server's writer stalls, then TCP stops this sender too.</summary>
internal sealed class StallingConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly Task _sender;

    private StallingConnection(Socket socket, Task sender)
    {
        _socket = socket;
        _sender = sender;
    }

    /// <summary>The task that sends HELLO and the PINGs: it ends once the server drops the connection.</summary>
    public Task Sender => _sender;

    public static async Task<StallingConnection> OpenAsync(ServerFixture f)
    {
        var socket = new Socket(f.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 64 * 1024 };
        var hello = new ArrayBufferWriter<byte>();
        FrameWriter.WriteHello(hello, 1, "t"u8, "1"u8, ProtocolFeatures.None);
        var chunk = new ArrayBufferWriter<byte>();
        for (var i = 0; i < 10_000; i++)
        {
            FrameWriter.WritePing(chunk, (ulong)i);
        }

        await socket.ConnectAsync(f.EndPoint);
        var sender = Task.Run(async () =>
        {
            try
            {
                await socket.SendAsync(hello.WrittenMemory);
                for (var sent = 0; sent < 1_000_000; sent += 10_000)
                {
                    await socket.SendAsync(chunk.WrittenMemory);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // reset by the server when it drops the connection
            }
        });
        return new StallingConnection(socket, sender);
    }

    /// <summary>
    /// Drops this side, then waits for the sender (its pending send fails at once). Whether the server dropped the
    /// connection is for the test to check first (<see cref="Sender"/> ending, the server's connection count): a
    /// disposal that waited for the server would fail the test's clean-up instead of its assertion.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await Eventually.Completes(_sender);
    }
}
