namespace FastBroker.Protocol;

/// <summary>Identifies one delivery of a work-queue message: topic offset + delivery count (a stale ack of an earlier delivery is refused).</summary>
public readonly struct DeliveryTag : IEquatable<DeliveryTag>
{
    /// <summary>Creates a tag.</summary>
    public DeliveryTag(ulong offset, uint deliveryCount)
    {
        Offset = offset;
        DeliveryCount = deliveryCount;
    }

    /// <summary>The message's topic offset.</summary>
    public ulong Offset { get; }

    /// <summary>The delivery count of the delivery being acknowledged (≥ 1).</summary>
    public uint DeliveryCount { get; }

    /// <inheritdoc />
    public bool Equals(DeliveryTag other) => Offset == other.Offset && DeliveryCount == other.DeliveryCount;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is DeliveryTag other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Offset, DeliveryCount);

    /// <inheritdoc />
    public override string ToString() => $"{Offset}#{DeliveryCount}";

    /// <summary>Equality.</summary>
    public static bool operator ==(DeliveryTag left, DeliveryTag right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(DeliveryTag left, DeliveryTag right) => !left.Equals(right);
}
