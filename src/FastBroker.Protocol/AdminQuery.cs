namespace FastBroker.Protocol;

/// <summary>What an ADMIN frame asks for.</summary>
public enum AdminQuery : byte
{
    /// <summary>Not a query.</summary>
    None = 0,

    /// <summary>Topics matching the argument pattern (all when empty).</summary>
    ListTopics = 1,

    /// <summary>Counters of the topic named by the argument.</summary>
    TopicStats = 2,

    /// <summary>Work-queue groups of the topic named by the argument (all when empty).</summary>
    ListGroups = 3,

    /// <summary>Server-wide counters.</summary>
    ServerStats = 4,
}
