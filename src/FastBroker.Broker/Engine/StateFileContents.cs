namespace FastBroker.Engine;

/// <summary>What a state file holds, as <see cref="StateFileHeader.Read"/> finds it.</summary>
internal enum StateFileContents
{
    /// <summary>No file at that path.</summary>
    Missing,

    /// <summary>
    /// Holds no state: empty, zeros where its magic belongs, or cut short after its magic, before the state it keeps.
    /// Nothing says what was acked or committed, so its owner starts from the oldest message kept, reported.
    /// </summary>
    NoState,

    /// <summary>Its magic and the header slots after it.</summary>
    State,

    /// <summary>
    /// Anything else: a wrong magic (a damaged or foreign header), longer than its full size (damaged, or of another
    /// version's layout; its owner's <c>Inspect</c> checks the length), or unreadable (also a directory at its path, or a
    /// symbolic link whose target is missing). Refused, left as it is.
    /// </summary>
    Damaged,
}
