using FastBroker.Compare.Systems;

namespace FastBroker.Compare.Tests;

/// <summary>
/// One system's server, started once per test class with the tool's own launcher (RabbitMQ takes ~6 s to start). A
/// server that is not installed fails every test of the class with "&lt;binary&gt; not installed: run
/// tools/install-competitors.sh".
/// </summary>
public abstract class SystemFixture(string name) : IAsyncLifetime
{
    private Exception? _startFailure;
    private IComparedSystem? _system;

    internal IComparedSystem System => _system ?? throw new InvalidOperationException($"{name} did not start: {_startFailure?.Message}", _startFailure);

    public async Task InitializeAsync()
    {
        try
        {
            _system = await CompareBenchmark.StartAsync(name, null).WaitAsync(TimeSpan.FromMinutes(2));
        }
        catch (Exception e)
        {
            // Reported by each test (a throwing fixture hides the reason behind a generic class failure).
            _startFailure = e;
        }
    }

    public async Task DisposeAsync()
    {
        if (_system is not null)
        {
            await _system.DisposeAsync();
        }
    }
}

public sealed class FastBrokerFixture() : SystemFixture("fastbroker");

public sealed class RedisFixture() : SystemFixture("redis");

public sealed class NatsFixture() : SystemFixture("nats");

public sealed class RabbitMqFixture() : SystemFixture("rabbitmq");
