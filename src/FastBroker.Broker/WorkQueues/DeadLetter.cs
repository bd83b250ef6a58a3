namespace FastBroker;

/// <summary>A message that a group gives up on: it goes to the group's dead-letter topic with this history.</summary>
/// <param name="Offset">Original offset in the source topic.</param>
/// <param name="DeliveryCount">How many times it was delivered.</param>
/// <param name="LastError">The reason given by the last nack, or why it was dead-lettered.</param>
public readonly record struct DeadLetter(long Offset, int DeliveryCount, string LastError);
