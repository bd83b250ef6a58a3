namespace FastBroker.Journal;

/// <summary>What <see cref="DamagedSegments.KeepAsideOnce"/> did.</summary>
/// <param name="Directory">The kept directory: the new one, or the one an earlier keep of the same files made.</param>
/// <param name="Files">The names of the files in it, in offset order.</param>
/// <param name="KeptBefore">
/// True when an earlier keep (of a process killed before the cut's repair log was written) had already kept these very
/// files, whole: nothing was kept again.
/// </param>
public sealed record KeptSegments(string Directory, IReadOnlyList<string> Files, bool KeptBefore);
