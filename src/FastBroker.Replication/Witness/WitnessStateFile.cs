using System.Globalization;
using System.Text;

namespace FastBroker.Replication;

/// <summary>
/// <c>&lt;dataDir&gt;/witness.state</c>: the lease holder, its epoch and whether its standby is behind, the only state of
/// a witness that must survive it. Text lines (<c>fastbroker-witness 1</c>, <c>holder &lt;nodeId|-&gt;</c>,
/// <c>epoch &lt;n&gt;</c>, <c>standby in-sync|behind</c>; a file without the fourth line, written before it existed,
/// reads as <c>in-sync</c>, and older witnesses ignore it), replaced
/// atomically: written to a temp file, fsync'd, renamed over the old one, and the directory fsync'd so the rename
/// itself survives power loss. A torn or unreadable file is an error, never a fresh start: restarting at epoch 0 would
/// hand out an epoch that a deposed primary already used.
/// </summary>
internal static class WitnessStateFile
{
    public const string FileName = "witness.state";
    private const string Magic = "fastbroker-witness 1";

    /// <summary>Reads the persisted state; (null, 0, false) when the directory holds none yet.</summary>
    /// <exception cref="InvalidDataException">The file exists but is not a valid state file.</exception>
    public static (string? Holder, long Epoch, bool StandbyBehind) Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return (null, 0, false);
        }

        var lines = File.ReadAllText(path, Encoding.ASCII).Split('\n');
        if (lines.Length < 3 || lines[0] != Magic
            || !lines[1].StartsWith("holder ", StringComparison.Ordinal)
            || !lines[2].StartsWith("epoch ", StringComparison.Ordinal)
            || !WitnessProtocol.TryParseLong(lines[2]["epoch ".Length..], out var epoch))
        {
            throw new InvalidDataException($"'{path}' is not a witness state file; move it away only if you know no primary holds an epoch from it.");
        }

        var behind = lines.Length > 3 && lines[3].Length > 0
            ? lines[3] switch
            {
                "standby behind" => true,
                "standby in-sync" => false,
                _ => throw new InvalidDataException($"'{path}' has an invalid standby line '{lines[3]}' (standby in-sync or standby behind expected)."),
            }
            : false;
        var holder = lines[1]["holder ".Length..];
        if (holder == WitnessProtocol.NoHolder)
        {
            return (null, epoch, false);
        }

        if (!WitnessProtocol.IsValidNodeId(holder))
        {
            throw new InvalidDataException($"'{path}' names an invalid holder '{holder}'.");
        }

        return (holder, epoch, behind);
    }

    /// <summary>Durably replaces the state (returns once it would survive a power cut).</summary>
    /// <exception cref="IOException">The file could not be written or renamed.</exception>
    /// <exception cref="FastBroker.Journal.JournalException">The directory could not be synced.</exception>
    public static void Save(string directory, string? holder, long epoch, bool standbyBehind)
    {
        var path = Path.Combine(directory, FileName);
        var text = string.Create(CultureInfo.InvariantCulture, $"{Magic}\nholder {holder ?? WitnessProtocol.NoHolder}\nepoch {epoch}\nstandby {(standbyBehind ? "behind" : "in-sync")}\n");
        FastBroker.Journal.DurableFile.WriteAllBytes(path, Encoding.ASCII.GetBytes(text));
    }
}
