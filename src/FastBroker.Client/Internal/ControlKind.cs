namespace FastBroker.Client.Internal;

/// <summary>The frames other than publishes and acks that the writer loop sends.</summary>
internal enum ControlKind : byte
{
    Subscribe,
    JoinGroup,
    Unsubscribe,
    Commit,
    Credit,
    Nack,
    Admin,
    Ping,
    InitProducer,
}
