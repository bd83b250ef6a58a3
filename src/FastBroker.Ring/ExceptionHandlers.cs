using FastBroker.Ring.Internal;

namespace FastBroker.Ring;

/// <summary>The built-in exception policies for processors and worker pools.</summary>
public static class ExceptionHandlers
{
    /// <summary>Logs the exception and halts the processor (the default: a consumer that fails is stopped, visibly).</summary>
    /// <param name="log">Where to write; default standard error.</param>
    public static IExceptionHandler<T> LogAndHalt<T>(Action<string>? log = null) => new LoggingExceptionHandler<T>(log, halt: true);

    /// <summary>Logs the exception, skips the event and carries on.</summary>
    /// <param name="log">Where to write; default standard error.</param>
    public static IExceptionHandler<T> LogAndContinue<T>(Action<string>? log = null) => new LoggingExceptionHandler<T>(log, halt: false);

    /// <summary>Halts the processor without logging; the exception is in <see cref="IEventProcessor.Fault"/>.</summary>
    public static IExceptionHandler<T> Halt<T>() => new LoggingExceptionHandler<T>(static _ => { }, halt: true);
}
