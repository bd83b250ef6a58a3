namespace FastBroker;

/// <summary>A typed broker error: a stable <see cref="Code"/> plus a reason a person can read.</summary>
public sealed class BrokerException : Exception
{
    /// <summary>Creates an error with a code and reason.</summary>
    public BrokerException(BrokerErrorCode code, string reason)
        : base(reason)
    {
        Code = code;
    }

    /// <summary>Creates an error with a code, a reason and the failure underneath.</summary>
    public BrokerException(BrokerErrorCode code, string reason, Exception inner)
        : base(reason, inner)
    {
        Code = code;
    }

    /// <summary>Creates an error without a code (<see cref="BrokerErrorCode.None"/>); prefer the coded constructors.</summary>
    public BrokerException()
    {
    }

    /// <summary>Creates an error without a code (<see cref="BrokerErrorCode.None"/>); prefer the coded constructors.</summary>
    public BrokerException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an error without a code (<see cref="BrokerErrorCode.None"/>); prefer the coded constructors.</summary>
    public BrokerException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>What kind of error this is; stable across versions and on the wire.</summary>
    public BrokerErrorCode Code { get; }
}
