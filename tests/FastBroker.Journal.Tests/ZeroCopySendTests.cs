using System.Net;
using System.Net.Sockets;
using FastBroker.Testing;

namespace FastBroker.Journal.Tests;

public class ZeroCopySendTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Records_sent_from_the_mapping_arrive_whole_and_in_order(bool useSendfile)
    {
        using var dir = new TempDirectory();
        using var journal = JournalLog.Open(dir.Path, AppendReadTests.Small);
        const int Count = 3000;
        AppendReadTests.AppendRange(journal, Count);

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await sender.ConnectAsync(listener.LocalEndPoint!);
        using var receiver = await listener.AcceptAsync();

        var receive = Task.Run(async () =>
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[64 << 10];
            int n;
            while ((n = await receiver.ReceiveAsync(chunk)) > 0)
            {
                buffer.Write(chunk, 0, n);
            }

            return buffer.ToArray();
        });

        using (var reader = journal.OpenReader(ReadStart.Beginning))
        {
            long sent = 0;
            int n;
            while ((n = useSendfile ? reader.SendFileTo(sender, 4096) : reader.SendTo(sender, 4096)) > 0)
            {
                sent += n;
            }

            Assert.Equal(Count, reader.NextOffset);
            Assert.True(sent > Count * 32);
        }

        sender.Shutdown(SocketShutdown.Send);
        var bytes = await Eventually.Completes(receive);
        var span = bytes.AsSpan();
        long expected = 0;
        while (!span.IsEmpty)
        {
            Assert.True(JournalRecord.TryParse(span, verifyChecksum: true, out var record, out var consumed), $"record {expected} parses");
            Assert.Equal(expected, record.Offset);
            Assert.True(record.Payload.SequenceEqual(AppendReadTests.PayloadFor(expected)));
            expected++;
            span = span.Slice(consumed);
        }

        Assert.Equal(Count, expected);
    }
}
