using System.Text;
using FastBroker.Protocol;

namespace FastBroker.ServerTests;

/// <summary>
/// An ERROR's reason is always sent, within the client's maxInboundFrameSize: a longer one is cut at a character
/// boundary (never inside a UTF-8 sequence or a surrogate pair) and ends with "…", so a reader can tell it was cut,
/// and the connection and the broker go on serving.
/// </summary>
public class ErrorReasonTests
{
    private const uint ClientMaxFrame = 1024; // the least a client may ask for (the server raises smaller ones)

    [Fact]
    public async Task A_reason_longer_than_the_clients_frame_limit_is_cut_at_a_character_with_an_ellipsis_and_the_connection_goes_on()
    {
        // A storage error names the file, so a data directory with a long path (3-byte characters) makes a long reason.
        string LongDirectory(string root) => Path.Combine([root, .. Enumerable.Range(0, 5).Select(i => new string((char)('\u20AC' + i), 80))]);
        BrokerOptions Configure(BrokerOptions o) => o with { DataDirectory = LongDirectory(o.DataDirectory) };
        await using var f = await ServerFixture.StartAsync(broker: Configure);
        var data = f.Broker.Options.DataDirectory;
        await f.Broker.PublishAsync("jobs", "m0"u8.ToArray());
        await using (var first = await f.ConnectAsync())
        {
            await first.SubscribeAsync(1, 1, "jobs", 4, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
            Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
            Assert.Equal(["m0"], (await first.ReadDeliveriesAsync(1)).Select(x => x.Text));
            await first.SendAsync(w => FrameWriter.WriteCommit(w, 2, 1, 1));
            Assert.Equal(FrameType.Ok, (await first.ReadAsync()).Type);
        }

        var path = Path.Combine(data, "subscriptions", "worker.pos");
        await f.RestartAsync(broker: Configure, whileClosed: () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.Write("NOTAPOSN"u8);
        });

        await using var c = await f.ConnectAsync(maxInboundFrameSize: ClientMaxFrame);
        await c.SubscribeAsync(7, 1, "jobs", 4, Protocol.StartKind.Committed, durable: "worker", fallback: Protocol.StartKind.Earliest);
        var error = await c.ReadAsync();
        Assert.True(error.Type == FrameType.Error && error.ErrorCode == ErrorCode.StorageError && error.RequestId == 7 && !error.CloseConnection, $"expected ERROR#7 StorageError, got: {error}");

        // Its UTF-8 takes the room the frame has, less at most one character and the ellipsis, and no more.
        var room = (int)ClientMaxFrame - ProtocolConstants.HeaderSize - 10;
        var reason = error.ErrorReason;
        var bytes = Encoding.UTF8.GetByteCount(reason);
        Assert.True(
            reason.EndsWith('…') && bytes <= room && bytes > room - 3 - 3 && !reason.Contains('\uFFFD', StringComparison.Ordinal) && reason.Contains(data[..200], StringComparison.Ordinal),
            $"expected a reason of {room - 5} to {room} UTF-8 bytes ending with '…', cut between characters, naming the path; got {bytes} bytes ({reason.Length} characters): {reason}");

        // The same connection subscribes under another durable name and is served.
        await c.SubscribeAsync(8, 2, "jobs", 4, Protocol.StartKind.Committed, durable: "other", fallback: Protocol.StartKind.Earliest);
        var ok = await c.ReadAsync();
        Assert.Equal((FrameType.Ok, 8UL), (ok.Type, ok.RequestId));
        Assert.Equal(["m0"], (await c.ReadDeliveriesAsync(1)).Select(d => d.Text));
    }

    /// <summary>
    /// A reason that quotes a name the client sent (a pattern, a COMMIT topic, an ADMIN argument) shows it as the broker's
    /// own reasons do: control characters as '?', at most 64 characters then "…", so a hostile name cannot put a line
    /// break, an escape sequence or 255 characters into the reason.
    /// </summary>
    [Fact]
    public async Task A_reason_quotes_a_clients_name_with_control_characters_shown_as_question_marks_and_at_most_64_characters()
    {
        await using var f = await ServerFixture.StartAsync();
        await using var c = await f.ConnectAsync();
        var hostile = "a\u001b[2J\nb\0c\r";
        var shown = "a?[2J?b?c?";
        var longName = new string('n', 200) + "\n";

        await c.SubscribeAsync(1, 1, hostile, 1);
        await c.SendAsync(w => FrameWriter.WriteAdmin(w, 2, AdminQuery.ListTopics, Encoding.UTF8.GetBytes(hostile)));
        await c.SendAsync(w => FrameWriter.WriteAdmin(w, 3, AdminQuery.TopicStats, Encoding.UTF8.GetBytes(longName)));
        await c.SubscribeAsync(4, 4, "jobs", 1, durable: "quoted");
        await c.SendAsync(w => FrameWriter.WriteCommit(w, 5, 4, 0, Encoding.UTF8.GetBytes(hostile)));
        var frames = await c.ReadUntilAsync(x => x.RequestId == 5);
        string Reason(ulong id) => frames.Single(x => x.RequestId == id && x.Type == FrameType.Error).ErrorReason;

        Assert.Equal($"SUBSCRIBE: invalid topic pattern '{shown}': character '?' is not allowed", Reason(1));
        Assert.StartsWith($"ADMIN: invalid topic pattern '{shown}': ", Reason(2), StringComparison.Ordinal);
        Assert.Equal($"ADMIN: topic '{new string('n', 64)}…' does not exist", Reason(3));
        Assert.Equal($"COMMIT: subscription 4 does not cover topic '{shown}'", Reason(5));
        Assert.All(frames.Where(x => x.Type == FrameType.Error), x => Assert.DoesNotContain(x.ErrorReason, ch => char.IsControl(ch)));
    }
}
