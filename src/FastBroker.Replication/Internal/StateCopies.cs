using FastBroker.Engine;

namespace FastBroker.Replication.Internal;

/// <summary>
/// What one link's standby holds of the state files (<see cref="StateFiles"/>), once it has applied every frame sent
/// on the link: the sender thread's record, so that it sends a file whole only when the standby lacks its contents.
/// A file the link has not sent whole, nor the standby reported at the attach (<see cref="Reported"/>), is unknown (the
/// standby's copy may be an older file, or damaged): it goes whole.
/// For a file sent whole, its hash and length (<see cref="StateFiles.Hash"/>: CRC32C and a second hash); for a position
/// file, instead, its exact image with each commit shipped since as an update stored into it as the standby stores it
/// (<see cref="PositionImage"/>), so a position file whose only changes are those commits is not sent again, and one
/// changed any other way is.
/// </summary>
internal sealed class StateCopies
{
    private readonly Dictionary<string, (ulong Hash, long Length)> _hashes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PositionImage> _positions = new(StringComparer.Ordinal);

    /// <summary>
    /// True when the standby's copy of <paramref name="relative"/> is (or, once it applied what was sent, will be)
    /// <paramref name="bytes"/>. A position file found so by its hash (as the standby reported it) is held as an image
    /// from then on, so that the commits shipped as updates after it keep it known.
    /// </summary>
    public bool Holds(string relative, ReadOnlySpan<byte> bytes)
    {
        var key = Key(relative);
        if (_positions.TryGetValue(key, out var image))
        {
            return image.Matches(bytes);
        }

        if (!_hashes.TryGetValue(key, out var known) || known.Length != bytes.Length || known.Hash != StateFiles.Hash(bytes))
        {
            return false;
        }

        if (StateFiles.SubscriptionOf(key) is not null && PositionImage.Of(bytes) is { } held)
        {
            _positions[key] = held;
            _hashes.Remove(key);
        }

        return true;
    }

    /// <summary>
    /// The standby said at the attach that its copy of <paramref name="relative"/> is <paramref name="length"/> bytes
    /// hashing to <paramref name="hash"/> (<see cref="StateDigests"/>, synced before it said so): a file with these bytes
    /// is not sent.
    /// </summary>
    public void Reported(string relative, long length, ulong hash)
    {
        var key = Key(relative);
        _positions.Remove(key);
        _hashes[key] = (hash, length);
    }

    /// <summary><paramref name="bytes"/> sent whole as <paramref name="relative"/>: the standby's copy is replaced by them.</summary>
    public void SentWhole(string relative, ReadOnlySpan<byte> bytes)
    {
        var key = Key(relative);
        if (StateFiles.SubscriptionOf(key) is not null && PositionImage.Of(bytes) is { } image)
        {
            _positions[key] = image;
            _hashes.Remove(key);
            return;
        }

        _positions.Remove(key);
        _hashes[key] = (StateFiles.Hash(bytes), bytes.Length);
    }

    /// <summary>A commit shipped as an update (in a POSITIONS frame after everything recorded so far): the standby stores it into its copy.</summary>
    public void Shipped(PositionUpdate update)
    {
        var key = "subscriptions/" + update.Subscription + ".pos";
        if (_positions.TryGetValue(key, out var image))
        {
            if (!image.Commit(update.Topic, update.NextOffset))
            {
                _positions.Remove(key); // unknown from now on: sent whole when next checked
            }

            return;
        }

        _hashes.Remove(key); // the update changed the copy: the hash of what was sent no longer says what it holds
    }

    /// <summary>The standby lost its copy of <paramref name="relative"/> (<see cref="FrameKind.StateWanted"/>): unknown until sent whole.</summary>
    public void Forget(string relative)
    {
        var key = Key(relative);
        _hashes.Remove(key);
        _positions.Remove(key);
    }

    private static string Key(string relative) => relative.Replace('\\', '/');
}
