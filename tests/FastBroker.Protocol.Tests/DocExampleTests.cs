using System.Buffers;
using System.Globalization;
using FastBroker.Protocol;

namespace FastBroker.ProtocolTests;

/// <summary>
/// The worked hex examples in docs/protocol.md ("Worked examples") are exactly what the writers produce and what
/// the parser reads. Each example is a fenced block after an <c>&lt;!-- example: name --&gt;</c> marker; text after
/// '#' on a line is a comment.
/// </summary>
public class DocExampleTests
{
    public static TheoryData<string> Names() => ["hello", "welcome", "publish", "confirm"];

    private static byte[] Expected(string name)
    {
        var w = new ArrayBufferWriter<byte>();
        switch (name)
        {
            case "hello":
                FrameWriter.WriteHello(w, 1, "demo"u8, "1.0"u8, ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues, "s3cret"u8);
                break;
            case "welcome":
                FrameWriter.WriteWelcome(w, 1, 1, 1048576, ProtocolFeatures.Batching | ProtocolFeatures.WorkQueues, 7, 1024, 5000, "fastbroker"u8, "0.1.0"u8);
                break;
            case "publish":
                var headers = new byte[16];
                var hw = new HeaderBlockWriter(headers);
                hw.TryAdd("trace"u8, "ab"u8);
                FrameWriter.WritePublish(w, 2, "orders.eu"u8, "hello"u8, "k1"u8, hw.WrittenSpan, Durability.Written);
                break;
            case "confirm":
                FrameWriter.WriteConfirm(w, new ConfirmRange(2, 1, ErrorCode.None, false, 41));
                break;
        }

        return w.WrittenSpan.ToArray();
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Hex_example_in_the_doc_matches_the_writer(string name)
    {
        var expected = Expected(name);
        var documented = ReadExample(name);
        Assert.True(
            expected.AsSpan().SequenceEqual(documented),
            $"docs/protocol.md example '{name}' differs from the writer; the writer produces:\n{Convert.ToHexString(expected)}");

        var fromClient = name is "hello" or "publish";
        var result = fromClient ? Parse.FromClient(new ReadOnlySequence<byte>(documented)) : Parse.FromServer(new ReadOnlySequence<byte>(documented));
        Assert.False(result.Error.IsError);
        Assert.Single(result.Log);
    }

    private static byte[] ReadExample(string name)
    {
        var lines = File.ReadAllLines(FindDoc());
        var marker = Array.FindIndex(lines, l => l.Trim() == $"<!-- example: {name} -->");
        Assert.True(marker >= 0, $"no example marker for '{name}'");
        var open = Array.FindIndex(lines, marker, l => l.StartsWith("```", StringComparison.Ordinal));
        var bytes = new List<byte>();
        for (var i = open + 1; !lines[i].StartsWith("```", StringComparison.Ordinal); i++)
        {
            var code = lines[i].Split('#')[0];
            foreach (var token in code.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                bytes.Add(byte.Parse(token, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
        }

        return [.. bytes];
    }

    private static string FindDoc()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "docs", "protocol.md");
            if (File.Exists(path))
            {
                return path;
            }
        }

        throw new FileNotFoundException("docs/protocol.md not found above " + AppContext.BaseDirectory);
    }
}
