namespace FastBroker.Protocol.Internal;

/// <summary>The constant reason texts of <see cref="FrameError"/>; docs/protocol.md, "Validation", lists them.</summary>
internal static class Reasons
{
    public const string LengthTooSmall = "length field is smaller than the 12 header bytes that follow it";
    public const string LengthTooLarge = "length field exceeds the maximum frame size";
    public const string UnknownType = "unknown frame type";
    public const string WrongDirection = "frame type is not valid in this direction";
    public const string UnknownFlags = "flag bits set that are not defined for this frame type";
    public const string ReservedHeader = "reserved header bytes are not zero";
    public const string FieldOverruns = "field overruns the end of the frame";
    public const string TrailingBytes = "bytes left after the last field";
    public const string InvalidUtf8 = "text is not valid UTF-8";
    public const string Empty = "must not be empty";
    public const string ReservedField = "reserved field is not zero";
    public const string ZeroCount = "count must be at least 1";
    public const string ZeroSubscriptionId = "subscription id 0 is reserved";
    public const string BadMagic = "magic is not \"FBRK\" (46 42 52 4B)";
    public const string VersionRange = "minVersion is greater than maxVersion";
    public const string UndefinedValue = "value is not defined";
    public const string ZeroDeliveryCount = "delivery count must be at least 1";
    public const string ZeroCredit = "credit must be at least 1";
    public const string HeaderEntryOverruns = "header entry overruns the header block";
}
