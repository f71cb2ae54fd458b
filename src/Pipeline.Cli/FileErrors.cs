namespace Pipeline.Cli;

/// <summary>Why a file named on the command line could not be opened, in words a user can act on.</summary>
internal static class FileErrors
{
    /// <summary>
    /// The reason <paramref name="ex"/> gives for <paramref name="path"/>, except that a directory
    /// is said to be one: .NET reports it as "Access to the path is denied", which sends the user
    /// to the permissions.
    /// </summary>
    public static string Reason(string path, Exception ex) =>
        Directory.Exists(path) ? "it is a directory, not a file" : ex.Message;
}
