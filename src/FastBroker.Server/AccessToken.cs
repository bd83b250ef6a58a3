namespace FastBroker.Server;

/// <summary>
/// An accepted auth token and what a connection that presents it may do. Patterns use the broker's
/// <see cref="TopicPattern"/> syntax (<c>orders.*</c> one token, <c>orders.&gt;</c> the rest); null allows
/// everything, an empty list nothing.
/// </summary>
/// <param name="Token">The secret, compared in constant time with the HELLO's <c>authToken</c> (UTF-8).</param>
/// <param name="PublishPatterns">Topics this token may publish to; null = all.</param>
/// <param name="SubscribePatterns">
/// Topics this token may read (SUBSCRIBE patterns and JOIN_GROUP topics); a subscription pattern is allowed when every
/// topic it can match is covered by one of these. Null = all.
/// </param>
/// <param name="Tenant">
/// Whose producer ids, durable subscription names and work-queue group names this token uses: tokens of one tenant share
/// them (give the old and the new token of a rotation the same tenant), tokens of different tenants never see each
/// other's. Null: the token is its own tenant (scoped by its secret, so a new secret starts with new names).
/// </param>
public sealed record AccessToken(string Token, IReadOnlyList<string>? PublishPatterns = null, IReadOnlyList<string>? SubscribePatterns = null, string? Tenant = null);
