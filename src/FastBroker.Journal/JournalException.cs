namespace FastBroker.Journal;

/// <summary>A journal failure with a machine-readable <see cref="ErrorCode"/> and a readable reason.</summary>
public class JournalException : Exception
{
    /// <summary>Creates the exception.</summary>
    public JournalException(JournalErrorCode errorCode, string message, Exception? innerException = null)
        : base(message, innerException) => ErrorCode = errorCode;

    /// <summary>Creates an <see cref="JournalErrorCode.IoError"/> exception (for serializers and tooling).</summary>
    public JournalException()
        : this(JournalErrorCode.IoError, "journal error")
    {
    }

    /// <summary>Creates an <see cref="JournalErrorCode.IoError"/> exception with a message.</summary>
    public JournalException(string message)
        : this(JournalErrorCode.IoError, message)
    {
    }

    /// <summary>Creates an <see cref="JournalErrorCode.IoError"/> exception with a message and cause.</summary>
    public JournalException(string message, Exception innerException)
        : this(JournalErrorCode.IoError, message, innerException)
    {
    }

    /// <summary>What went wrong, for code that reacts to it (e.g. the broker maps DiskFull to an error frame).</summary>
    public JournalErrorCode ErrorCode { get; }
}
