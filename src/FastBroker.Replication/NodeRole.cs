namespace FastBroker.Replication;

/// <summary>The role a node of a failover pair plays right now.</summary>
public enum NodeRole
{
    /// <summary>Deciding (probing its peer, asking the witness); accepts no writes.</summary>
    Starting = 0,

    /// <summary>Serves clients and streams its journals to the standby.</summary>
    Primary = 1,

    /// <summary>Copies the primary's journals; accepts no client connections until promoted.</summary>
    Standby = 2,

    /// <summary>Was primary, lost its lease or saw a newer epoch: refuses writes until it has rejoined as standby.</summary>
    Fenced = 3,
}
