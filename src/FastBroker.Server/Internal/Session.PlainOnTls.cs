using System.Buffers;
using System.Net.Sockets;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>
/// A plain-TCP client on a TLS server: told so in a plain ERROR before the close, not just closed (it saw only "closed
/// the connection", with no hint that it needs TLS).
/// </summary>
internal sealed partial class Session
{
    internal const string TlsRequiredReason = "this server requires TLS: the connection sent a plain FastBroker frame where a TLS handshake was expected; connect with TLS (BrokerClientOptions.UseTls, fastbroker --tls or --tls-ca)";

    /// <summary>
    /// True when the client's first bytes are not a TLS record (a TLS handshake starts 0x16 0x03): it speaks plain TCP.
    /// Peeks, so a TLS client's bytes are left for the handshake.
    /// </summary>
    private async Task<bool> SpeaksPlainAsync(CancellationToken cancellationToken)
    {
        var first = new byte[2];
        var got = 0;
        while (got < 2)
        {
            got = await _socket.ReceiveAsync(first, SocketFlags.Peek, cancellationToken).ConfigureAwait(false);
            if (got == 0)
            {
                return false; // end of stream: the handshake fails on it as before
            }

            if (first[0] != 0x16)
            {
                return true;
            }

            if (got < 2)
            {
                // One byte of a possible TLS record: the next arrives with it, well within the handshake timeout.
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
        }

        return first[1] != 0x03;
    }

    /// <summary>
    /// Answers a plain client with ERROR <see cref="ErrorCode.UnsupportedVersion"/> (which a client does not retry) and
    /// <see cref="TlsRequiredReason"/>, then closes in an orderly way: what the client sent is read first, so the close
    /// is a FIN the ERROR arrives before, not a reset that could discard it.
    /// </summary>
    private async Task RefusePlainClientAsync(CancellationToken cancellationToken)
    {
        _server.CountProtocolErrorClose();
        _server.LogClose($"connection {Id} ({RemoteEndPoint}): refused: a plain-TCP client on a TLS server");
        var frame = new ArrayBufferWriter<byte>(512);
        FrameWriter.WriteError(frame, 0, ErrorCode.UnsupportedVersion, TlsRequiredReason.AsSpan(), ErrorFlags.CloseConnection);
        var scratch = new byte[4096];
        while (_socket.Available > 0 && await _socket.ReceiveAsync(scratch, SocketFlags.None, cancellationToken).ConfigureAwait(false) > 0)
        {
        }

        await _socket.SendAsync(frame.WrittenMemory, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        _socket.Shutdown(SocketShutdown.Send);
        while (await _socket.ReceiveAsync(scratch, SocketFlags.None, cancellationToken).ConfigureAwait(false) > 0)
        {
            // Until the client closes its side (having read the ERROR), or the handshake timeout.
        }
    }
}
