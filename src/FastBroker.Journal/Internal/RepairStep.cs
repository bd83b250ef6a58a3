namespace FastBroker.Journal.Internal;

/// <summary>The points of a repair where the test seam <c>JournalOptions.RepairStepHook</c> is called.</summary>
internal enum RepairStep
{
    /// <summary>The repair log is durable; nothing is changed yet.</summary>
    LogWritten,

    /// <summary>The files past the cut are deleted and the directory fsynced; the cut segment is untouched.</summary>
    FilesDeleted,

    /// <summary>The cut segment's seal is removed (synced); its dropped bytes are not zeroed yet.</summary>
    Unsealed,

    /// <summary>The dropped bytes are zeroed (synced): the repair is done, the open is not.</summary>
    Zeroed,
}
