using System.Text;

namespace FastBroker.Journal.Tests;

public class Crc32CTests
{
    public static TheoryData<string, uint> Vectors => new()
    {
        { "123456789", 0xE3069283u },
        { "", 0x00000000u },
        { "a", 0xC1D04330u },
        { "The quick brown fox jumps over the lazy dog", 0x22620404u },
    };

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Known_text_vectors_match_on_both_paths(string text, uint expected)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Assert.Equal(expected, Crc32C.Compute(bytes));
        Assert.Equal(expected, ~Crc32C.UpdateSoftware(0xFFFFFFFFu, bytes));
    }

    [Fact]
    public void Rfc3720_iscsi_vectors_match_on_both_paths()
    {
        var zeros = new byte[32];
        var ones = Enumerable.Repeat((byte)0xFF, 32).ToArray();
        var up = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var down = Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray();
        foreach (var (data, crc) in new[] { (zeros, 0x8A9136AAu), (ones, 0x62A8AB43u), (up, 0x46DD794Eu), (down, 0x113FDB5Cu) })
        {
            Assert.Equal(crc, Crc32C.Compute(data));
            Assert.Equal(crc, ~Crc32C.UpdateSoftware(0xFFFFFFFFu, data));
        }
    }

    [Fact]
    public void Hardware_and_software_agree_on_every_length_and_alignment()
    {
        var random = new Random(42);
        var buffer = new byte[4096 + 16];
        random.NextBytes(buffer);
        for (var length = 0; length < 300; length++)
        {
            for (var start = 0; start < 8; start++)
            {
                var span = buffer.AsSpan(start, length);
                Assert.Equal(~Crc32C.UpdateSoftware(0xFFFFFFFFu, span), Crc32C.Compute(span));
            }
        }

        Assert.Equal(~Crc32C.UpdateSoftware(0xFFFFFFFFu, buffer), Crc32C.Compute(buffer));
    }

    [Fact]
    public void Append_continues_a_finished_checksum()
    {
        var data = Encoding.ASCII.GetBytes("123456789");
        for (var split = 0; split <= data.Length; split++)
        {
            Assert.Equal(0xE3069283u, Crc32C.Append(Crc32C.Compute(data.AsSpan(0, split)), data.AsSpan(split)));
        }
    }

    [Fact]
    public void A_single_bit_flip_changes_the_checksum()
    {
        var data = new byte[200];
        new Random(7).NextBytes(data);
        var crc = Crc32C.Compute(data);
        for (var bit = 0; bit < data.Length * 8; bit += 13)
        {
            data[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotEqual(crc, Crc32C.Compute(data));
            data[bit / 8] ^= (byte)(1 << (bit % 8));
        }
    }
}
