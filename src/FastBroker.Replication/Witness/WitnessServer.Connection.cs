using System.Net.Sockets;
using System.Text;

namespace FastBroker.Replication;

public sealed partial class WitnessServer
{
    // After an ERROR the rest of what the client sent is read and dropped (up to 64 KiB, for up to 1 s) before the
    // socket closes: closing with unread input sends a RST, which can discard the ERROR line before the client reads it.
    private const int DrainBytes = 64 * 1024;
    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(1);

    /// <summary>One connection: requests are answered in order, one line each, until EOF, an ERROR, idle timeout or stop.</summary>
    private async Task ServeAsync(Socket socket)
    {
        var buffer = new byte[WitnessProtocol.MaxLineBytes];
        var filled = 0;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        try
        {
            while (true)
            {
                // Every complete line already received, in order (a client may pipeline several).
                int end;
                while ((end = Array.IndexOf(buffer, (byte)'\n', 0, filled)) >= 0)
                {
                    var response = Answer(buffer.AsSpan(0, end), socket, out var close);
                    filled -= end + 1;
                    buffer.AsSpan(end + 1, filled).CopyTo(buffer);
                    idle.CancelAfter(Options.IdleTimeout);
                    await socket.SendAsync(Encoding.ASCII.GetBytes(response), SocketFlags.None, idle.Token).ConfigureAwait(false);
                    if (close)
                    {
                        await CloseAfterErrorAsync(socket).ConfigureAwait(false);
                        return;
                    }
                }

                if (filled == buffer.Length)
                {
                    Log($"witness: {Describe(socket)}: line longer than {WitnessProtocol.MaxLineBytes} bytes");
                    idle.CancelAfter(Options.IdleTimeout);
                    var error = WitnessProtocol.FormatError($"line longer than {WitnessProtocol.MaxLineBytes} bytes");
                    await socket.SendAsync(Encoding.ASCII.GetBytes(error), SocketFlags.None, idle.Token).ConfigureAwait(false);
                    await CloseAfterErrorAsync(socket).ConfigureAwait(false);
                    return;
                }

                idle.CancelAfter(Options.IdleTimeout);
                var n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, idle.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }

                filled += n;
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer went away, was idle too long, or the witness is stopping: nothing to answer.
        }
    }

    /// <summary>Parses and executes one request line (its terminator excluded); <paramref name="close"/> after an ERROR.</summary>
    private string Answer(ReadOnlySpan<byte> line, Socket socket, out bool close)
    {
        if (!line.IsEmpty && line[^1] == (byte)'\r')
        {
            line = line[..^1];
        }

        if (!WitnessProtocol.TryParseRequest(line, out var request, out var error))
        {
            Log($"witness: {Describe(socket)}: {error}");
            close = true;
            return WitnessProtocol.FormatError(error);
        }

        return Execute(request, out close);
    }

    private static async Task CloseAfterErrorAsync(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
            using var drain = new CancellationTokenSource(s_drainTimeout);
            var scratch = new byte[1024];
            var total = 0;
            while (total < DrainBytes)
            {
                var n = await socket.ReceiveAsync(scratch, SocketFlags.None, drain.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }

                total += n;
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private static string Describe(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint?.ToString() ?? "?";
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return "?";
        }
    }
}
