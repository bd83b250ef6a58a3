namespace FastBroker.Net;

/// <summary>
/// The query of <c>GET /standby</c> (Patroni's <c>GET /replica?lag=</c>): <c>lag=N</c>, the most records the standby
/// may lack of its primary's journals for the check to pass. Records, not bytes: a standby knows how far each topic's
/// copy is behind the head its primary last reported (offsets are dense per topic), and it has no byte position in
/// the primary's files to compare (its segments do not start where the primary's do). Shared by the admin server,
/// which refuses a malformed value with 400 on any node, and the failover node, which applies it.
/// </summary>
internal static class StandbyCheckQuery
{
    /// <summary>
    /// Reads <c>lag</c> from <paramref name="query"/> (the part after <c>?</c>; other parameters are ignored):
    /// <paramref name="maxLag"/> null when absent. False with a readable <paramref name="error"/> for a value that is
    /// not a whole number of records (0 to 2^63 - 1), or for <c>lag</c> given twice.
    /// </summary>
    public static bool TryParse(string query, out long? maxLag, out string? error)
    {
        maxLag = null;
        error = null;
        foreach (var parameter in query.Split('&'))
        {
            var eq = parameter.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? parameter : parameter[..eq];
            if (name != "lag")
            {
                continue;
            }

            var value = eq < 0 ? "" : parameter[(eq + 1)..];
            if (maxLag is not null)
            {
                error = "lag is given more than once";
                return false;
            }

            if (value.Length == 0 || !value.All(char.IsAsciiDigit) || !long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n))
            {
                error = $"lag must be a whole number of records from 0 to {long.MaxValue} (how many records the standby may lack of the heads its primary last reported; not bytes, no units): got '{value}'";
                return false;
            }

            maxLag = n;
        }

        return true;
    }
}
