using System.Text;
using Microsoft.Win32.SafeHandles;

namespace FastBroker.Cli.Commands;

/// <summary>
/// Where <c>sub</c> prints its messages: standard output, written straight to descriptor 1 so that a reader that has
/// gone (<c>sub … | head -1</c>, a consumer that crashed) is seen. .NET ignores SIGPIPE and its console pretends a
/// write to a broken pipe succeeded, so through <see cref="Console.Out"/> a group member acked, and a durable
/// subscription committed, every message it "printed" into the void. Unbuffered: each line is written (and a broken pipe
/// seen) before the message is acked or committed.
/// </summary>
internal sealed class MessageOutput : IDisposable
{
    private readonly Stream _stream;

    public MessageOutput()
    {
        try
        {
            _stream = new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0);
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            _stream = Console.OpenStandardOutput(); // descriptor 1 closed or not writable: what Console does with it
        }
    }

    /// <summary>Writes <paramref name="line"/> and a newline; false when the reader of standard output has gone (EPIPE).</summary>
    public bool TryWriteLine(string line)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(line) + 1];
        Encoding.UTF8.GetBytes(line, bytes);
        bytes[^1] = (byte)'\n';
        return TryWrite(bytes);
    }

    /// <summary>Writes <paramref name="bytes"/> (a whole line); false when the reader of standard output has gone (EPIPE).</summary>
    public bool TryWrite(ReadOnlySpan<byte> bytes)
    {
        try
        {
            _stream.Write(bytes);
            return true;
        }
        catch (IOException)
        {
            return false; // EPIPE: nobody reads standard output any more (SIGPIPE is ignored by the runtime)
        }
    }

    public void Dispose() => _stream.Dispose();
}
