namespace FastBroker.Protocol;

/// <summary>Encoding of an ADMIN_RESULT body.</summary>
public enum AdminResultFormat : byte
{
    /// <summary>Not a format.</summary>
    None = 0,

    /// <summary>UTF-8 JSON.</summary>
    Json = 1,
}
