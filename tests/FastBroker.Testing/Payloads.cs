using System.Text;

namespace FastBroker.Testing;

/// <summary>Payloads that name themselves: a text prefix (checked on delivery) padded with zeros to a fixed size.</summary>
public static class Payloads
{
    /// <summary><paramref name="prefix"/> in UTF-8, then zeros up to <paramref name="size"/> bytes.</summary>
    public static byte[] Padded(string prefix, int size)
    {
        var payload = new byte[size];
        Encoding.UTF8.GetBytes(prefix, payload);
        return payload;
    }
}
