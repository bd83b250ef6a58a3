using FastBroker.Testing;

namespace FastBroker.Crash.Tests;

/// <summary>
/// An embedded application that keeps acking, fetching or reading while and after its broker is disposed gets
/// false, <see cref="WorkQueueOutcome.UnknownDelivery"/>, 0 or <see cref="ObjectDisposedException"/>, never a
/// read of unmapped memory. That would be a SIGSEGV, so the application runs as a child process
/// (FastBroker.Broker.CrashHost, <c>use-after-dispose</c>).
/// </summary>
public class UseAfterDisposeTests
{
    [Theory]
    [InlineData("group", "ACK False|NACK UnknownDelivery|FETCH 0|CREDIT ObjectDisposedException|DONE")]
    [InlineData("subscription", "FETCH-DURING 3 job0|FETCH-AFTER ObjectDisposedException|POSITION ObjectDisposedException|DONE")]
    public void Using_a_member_or_subscription_during_and_after_broker_dispose_fails_cleanly(string scenario, string expected)
    {
        Assert.True(File.Exists(BrokerCrashTests.HostPath), $"crash host not built next to the tests: {BrokerCrashTests.HostPath}");
        using var dir = new TempDirectory("fastbroker-use-after-dispose");
        using var child = ChildProcess.StartDotnet(BrokerCrashTests.HostPath, dir.Path, "use-after-dispose", scenario);
        Assert.True(child.WaitForExit(Eventually.DefaultTimeout), $"the child did not finish: {string.Join(" | ", child.Lines)}");
        Assert.True(child.ExitCode == 0, $"the child died with exit code {child.ExitCode} (134: fatal AccessViolationException, 139: SIGSEGV) after: {string.Join(" | ", child.Lines)} {child.Errors}");
        Assert.Equal(expected, string.Join("|", child.Lines));
    }
}
