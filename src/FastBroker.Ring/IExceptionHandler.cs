namespace FastBroker.Ring;

/// <summary>
/// What a processor does when a handler throws. Returning normally skips the failed event and carries on;
/// throwing (for example rethrowing the exception) halts the processor, which records the exception in
/// <see cref="IEventProcessor.Fault"/>, runs its shutdown callback and returns from
/// <see cref="IEventProcessor.Run"/> normally (a dedicated thread does not take the process down).
/// </summary>
/// <remarks>Built-in policies: <see cref="ExceptionHandlers"/>. The default is <see cref="ExceptionHandlers.LogAndHalt{T}"/>.</remarks>
public interface IExceptionHandler<in T>
{
    /// <summary>A handler threw while processing <paramref name="sequence"/>.</summary>
    void HandleEventException(Exception exception, long sequence, T data);

    /// <summary>The handler's start callback threw.</summary>
    void HandleOnStartException(Exception exception);

    /// <summary>The handler's shutdown callback threw.</summary>
    void HandleOnShutdownException(Exception exception);
}
