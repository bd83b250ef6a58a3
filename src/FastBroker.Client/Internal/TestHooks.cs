namespace FastBroker.Client.Internal;

/// <summary>
/// Lets a test stop a client thread at a named point (<see cref="TestHookPoint"/>) to force an interleaving that is
/// otherwise a matter of luck on a busy machine. Off unless the host sets the AppContext switch <see cref="Switch"/>
/// (the client tests set it in their runtimeconfig).
/// </summary>
/// <remarks>
/// <see cref="Enabled"/> is a <c>static readonly</c> bool set once: the JIT folds <c>if (TestHooks.Enabled)</c> to a
/// constant in optimized code, so with the switch off the hook points cost nothing (not even the delegate's null check);
/// under native AOT each costs one static bool read. The points are per batch or per writer pass, never per message.
/// </remarks>
internal static class TestHooks
{
    public const string Switch = "FastBroker.Client.TestHooks";

    public static readonly bool Enabled = AppContext.TryGetSwitch(Switch, out var on) && on;
}
