namespace Pipeline.Modules;

/// <summary>
/// A module's run (or its status or enqueue) cannot go on, for a reason its message says in full
/// and without secrets (<c>The SQLite store 'pipeline.db' cannot be used: the file is read-only</c>):
/// a host prints the message as it is, once, rather than an exception's type and stack.
/// </summary>
public sealed class ModuleRunException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ModuleRunException()
    {
    }

    /// <summary>Creates the exception with its message.</summary>
    public ModuleRunException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public ModuleRunException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
