using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace FastBroker.Replication.Internal;

/// <summary>
/// A node's durable replication state in <c>&lt;data&gt;/replication/node.state</c>: its epoch (the term of the
/// primary it last served or followed), its last role, and the epoch history — for each epoch, the offset every
/// topic had when that epoch's primary took over. The history tells a returning node which of its records the new
/// primary never had (Kafka's leader-epoch idea). Written whole: temp file, fsync, rename, directory
/// fsync.
/// </summary>
internal sealed class NodeState
{
    private readonly string _path;

    private const string LeaderPrefix = "#";
    private readonly string _bootId = CurrentBootId();
    private string _savedBootId = "";

    private NodeState(string path) => _path = path;

    public long Epoch { get; private set; }

    /// <summary><see cref="RebootedSinceLastRun"/> as it was when this process loaded the state (saving resets it).</summary>
    public bool RebootedAtLoad { get; private set; }

    /// <summary>
    /// The host has restarted since this state was last written (Linux boot id): the page cache of the last run is
    /// gone, so journals written without fsync may have lost their tail — records the peer may still hold.
    /// </summary>
    public bool RebootedSinceLastRun => _savedBootId.Length > 0 && _bootId.Length > 0 && _savedBootId != _bootId;

    public NodeRole LastRole { get; private set; } = NodeRole.Starting;

    /// <summary>Epoch → topic → first offset written in that epoch.</summary>
    public SortedDictionary<long, Dictionary<string, long>> History { get; } = [];

    /// <summary>
    /// The largest epoch a node can hold: 2^63 - 2, the largest a witness grants (a node asks from its epoch, and a lease
    /// request at 2^63 - 1 cannot be made).
    /// </summary>
    public const long MaxEpoch = long.MaxValue - 1;

    /// <summary>
    /// Why no epoch can follow <paramref name="epoch"/> (null when one can): at <see cref="MaxEpoch"/> or past it, a new
    /// epoch would be 2^63 - 1, which no node starts with, or wrap to a negative one. Names the epoch.
    /// </summary>
    public static string? NoEpochAfter(long epoch) => epoch < MaxEpoch
        ? null
        : string.Create(CultureInfo.InvariantCulture, $"no new epoch can follow epoch {epoch}: {MaxEpoch} (2^63 - 2) is the largest a node can hold; the pair cannot change its primary (docs/replication.md, \"Roles, epochs, fencing\")");

    /// <summary>Loads (or starts) the state of the node whose data directory is <paramref name="dataDirectory"/>.</summary>
    /// <exception cref="InvalidDataException">
    /// <c>node.state</c> has an epoch that does not parse or is outside 0..<see cref="MaxEpoch"/>, named with the file and the value.
    /// </exception>
    public static NodeState Load(string dataDirectory)
    {
        var dir = Path.Combine(dataDirectory, "replication");
        Directory.CreateDirectory(dir);
        var state = new NodeState(Path.Combine(dir, "node.state"));
        if (File.Exists(state._path))
        {
            state.Parse(File.ReadAllText(state._path));
        }

        state.RebootedAtLoad = state.RebootedSinceLastRun;
        return state;
    }

    /// <summary>
    /// Records a new epoch this node (<paramref name="leader"/>) starts serving as primary, with each topic's head at
    /// that moment. The leader is kept in the entry as the pseudo-topic <c>#leader</c> (topic names cannot hold
    /// <c>#</c>): without a witness two nodes can take the same epoch number, and only entries of the same leader are
    /// the same history (<see cref="DivergenceOffset"/>).
    /// </summary>
    public void BeginEpoch(long epoch, IReadOnlyDictionary<string, long> heads, string leader)
    {
        if (epoch <= Epoch && History.ContainsKey(epoch))
        {
            throw new InvalidOperationException($"epoch {epoch} already begun");
        }

        History[epoch] = new Dictionary<string, long>(heads, StringComparer.Ordinal) { [LeaderPrefix + leader] = 0 };
        Epoch = epoch;
        LastRole = NodeRole.Primary;
        Save();
    }

    /// <summary>
    /// Adopts the primary's epoch and history (a standby following it). The text is parsed whole first: one that does
    /// not parse throws <see cref="InvalidDataException"/> and leaves the state as it was.
    /// </summary>
    public void Follow(long epoch, string historyText) => Follow(epoch, ParseHistory(historyText));

    /// <summary>
    /// Adopts the primary's epoch and (parsed) history. All or nothing: if the state cannot be saved, the epoch, role
    /// and history in memory stay as they were too (fencing and the divergence check read them).
    /// </summary>
    public void Follow(long epoch, SortedDictionary<long, Dictionary<string, long>> history)
    {
        var (oldEpoch, oldRole, oldHistory) = (Epoch, LastRole, new SortedDictionary<long, Dictionary<string, long>>(History));
        ReplaceHistory(history);
        Epoch = epoch;
        LastRole = NodeRole.Standby;
        try
        {
            Save();
        }
        catch
        {
            ReplaceHistory(oldHistory);
            Epoch = oldEpoch;
            LastRole = oldRole;
            throw;
        }
    }

    private void ReplaceHistory(SortedDictionary<long, Dictionary<string, long>> history)
    {
        History.Clear();
        foreach (var (epoch, starts) in history)
        {
            History[epoch] = starts;
        }
    }

    /// <summary>Records the role (and that this boot has decided one: see <see cref="RebootedSinceLastRun"/>).</summary>
    public void SetRole(NodeRole role)
    {
        if (LastRole != role || _savedBootId != _bootId)
        {
            LastRole = role;
            Save();
        }
    }

    /// <summary>
    /// Where a node that last followed <paramref name="theirEpoch"/>, with epoch history <paramref name="theirs"/>, must
    /// cut <paramref name="topic"/>, or null when nothing is to be cut. Both histories agree up to the last epoch they
    /// share (the same epoch begun by the same leader: the same primary wrote those records); from there on each side's records are its own. So the cut is the
    /// earlier of the two ends of that epoch: where this history's next epoch starts (what the later primaries built
    /// on) and where theirs does (records of an epoch this node never followed, such as one the rejoining node led
    /// while cut off: those offsets hold other records here even if this history's next epoch starts later). With no
    /// common epoch (a node that never followed anyone), the shared part is what came before either history's first
    /// epoch. The ends of the shared epoch itself, when neither history goes past it, are the ordinary catch-up case
    /// (the caller keeps at most this node's head).
    /// </summary>
    public long? DivergenceOffset(long theirEpoch, SortedDictionary<long, Dictionary<string, long>> theirs, string topic)
    {
        var common = 0L;
        foreach (var (epoch, starts) in theirs)
        {
            if (epoch <= theirEpoch && History.TryGetValue(epoch, out var mine) && Leader(mine) == Leader(starts))
            {
                common = epoch;
            }
        }

        var ours = EndOf(History, common, topic);
        var theirsEnd = EndOf(theirs, common, topic);
        return ours is null ? theirsEnd : theirsEnd is null ? ours : Math.Min(ours.Value, theirsEnd.Value);
    }

    /// <summary>
    /// True when <paramref name="theirs"/> and this history both hold <paramref name="epoch"/> but begun by different
    /// nodes: each led an epoch of that number (promoted separately), so their records of it differ.
    /// </summary>
    public bool LedByAnother(long epoch, SortedDictionary<long, Dictionary<string, long>> theirs) =>
        History.TryGetValue(epoch, out var mine) && theirs.TryGetValue(epoch, out var starts) && Leader(mine) != Leader(starts);

    /// <summary>The node that began an epoch (null in entries written before leaders were recorded).</summary>
    private static string? Leader(Dictionary<string, long> starts)
    {
        foreach (var key in starts.Keys)
        {
            if (key.StartsWith(LeaderPrefix, StringComparison.Ordinal))
            {
                return key[LeaderPrefix.Length..];
            }
        }

        return null;
    }

    /// <summary>The start of the first epoch after <paramref name="epoch"/> in <paramref name="history"/>, or null.</summary>
    private static long? EndOf(SortedDictionary<long, Dictionary<string, long>> history, long epoch, string topic)
    {
        foreach (var (e, starts) in history)
        {
            if (e > epoch)
            {
                return starts.TryGetValue(topic, out var offset) ? offset : 0;
            }
        }

        return null;
    }

    public string FormatHistory()
    {
        var sb = new StringBuilder();
        foreach (var (epoch, starts) in History)
        {
            sb.Append(epoch.ToString(CultureInfo.InvariantCulture));
            foreach (var (topic, offset) in starts.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                sb.Append(' ').Append(topic).Append('@').Append(offset.ToString(CultureInfo.InvariantCulture));
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }

    private void Save()
    {
        var text = $"epoch={Epoch.ToString(CultureInfo.InvariantCulture)}\nrole={LastRole}\nboot={_bootId}\n" + string.Concat(FormatHistory().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "history=" + l + "\n"));
        // The epoch must not go back after a power cut (a node would take, or follow, an epoch it already left): the
        // directory is fsync'd as well, so that the rename itself survives.
        FastBroker.Journal.DurableFile.WriteAllBytes(_path, Encoding.UTF8.GetBytes(text));
        _savedBootId = _bootId;
    }

    private static string CurrentBootId()
    {
        try
        {
            return File.Exists("/proc/sys/kernel/random/boot_id") ? File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim() : "";
        }
        catch (IOException)
        {
            return "";
        }
    }

    private void Parse(string text)
    {
        var history = new StringBuilder();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                continue;
            }

            var value = line[(eq + 1)..];
            switch (line[..eq])
            {
                case "epoch":
                    Epoch = ParseEpoch(value);
                    break;
                case "role":
                    LastRole = Enum.TryParse<NodeRole>(value, out var r) ? r : NodeRole.Starting;
                    break;
                case "boot":
                    _savedBootId = value;
                    break;
                case "history":
                    history.Append(value).Append('\n');
                    break;
            }
        }

        ReplaceHistory(ParseHistory(history.ToString()));
    }

    /// <summary>The <c>epoch=</c> value: an integer 0..<see cref="MaxEpoch"/>, or an error naming the file, the value and the range.</summary>
    private long ParseEpoch(string value)
    {
        if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var epoch) && epoch is >= 0 and <= MaxEpoch)
        {
            return epoch;
        }

        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"'{_path}' has an epoch out of range: '{Shorten(value)}' (0 to {MaxEpoch}): the node does not start with it; restore the file from the node's last run, or move it away to start the node as new (docs/replication.md)"));
    }

    /// <summary>
    /// A history in <see cref="FormatHistory"/>'s text form; <see cref="InvalidDataException"/> (with the reason) if it
    /// does not parse.
    /// </summary>
    public static SortedDictionary<long, Dictionary<string, long>> ParseHistory(string text) =>
        TryParseHistory(text, out var history, out var error) ? history : throw new InvalidDataException($"epoch history: {error}");

    /// <summary>
    /// A history in <see cref="FormatHistory"/>'s text form: one line per epoch, <c>&lt;epoch&gt;</c> then
    /// <c>&lt;topic&gt;@&lt;offset&gt;</c> entries separated by spaces, every number a non-negative integer, each epoch and
    /// each topic of a line once. False, and why, for any other text; nothing is half parsed.
    /// </summary>
    public static bool TryParseHistory(string text, [NotNullWhen(true)] out SortedDictionary<long, Dictionary<string, long>>? history, out string error)
    {
        var parsed = new SortedDictionary<long, Dictionary<string, long>>();
        history = null;
        var number = 0;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            number++;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0 || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var epoch))
            {
                error = $"line {number} ('{Shorten(line)}') does not start with an epoch number";
                return false;
            }

            if (parsed.ContainsKey(epoch))
            {
                error = $"line {number}: epoch {epoch} appears twice";
                return false;
            }

            var starts = new Dictionary<string, long>(StringComparer.Ordinal);
            for (var i = 1; i < parts.Length; i++)
            {
                var at = parts[i].LastIndexOf('@');
                if (at <= 0 || !long.TryParse(parts[i].AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
                {
                    error = $"line {number} (epoch {epoch}): '{Shorten(parts[i])}' is not <topic>@<offset>";
                    return false;
                }

                if (!starts.TryAdd(parts[i][..at], offset))
                {
                    error = $"line {number} (epoch {epoch}): '{Shorten(parts[i][..at])}' appears twice";
                    return false;
                }
            }

            parsed[epoch] = starts;
        }

        history = parsed;
        error = "";
        return true;
    }

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..80] + "…";
}
