using NATS.NKeys;
using Pipeline.Modules;

namespace Pipeline.Nats.Connection;

/// <summary>
/// Reads and checks the files a connection names, each once and bounded (<see cref="SettingFile"/>):
/// a <c>.creds</c> file must hold a user JWT and an NKey seed, an NKey file a seed, a PEM file at
/// least one PEM block. The connection is then given what was read, never the path, so NATS.Net
/// does not read the file again on each connect. Problems never quote the file's content (it is a secret).
/// </summary>
internal static class NatsCredentialFiles
{
    private const string JwtHeader = "-----BEGIN NATS USER JWT-----";
    private const string SeedHeader = "-----BEGIN USER NKEY SEED-----";

    /// <summary>The user JWT and NKey seed of a <c>.creds</c> file; null, with the problem (the rest of a sentence), when it holds none.</summary>
    public static (string Jwt, string Seed)? ReadCreds(string path, out string? problem)
    {
        if (SettingFile.TryRead(path, out problem) is not { } text)
        {
            return null;
        }

        // As nsc writes it (and NATS.Net reads it): each value on the line after its header.
        string? jwt = null;
        string? seed = null;
        var lines = Lines(text);
        for (var i = 0; i + 1 < lines.Length; i++)
        {
            if (lines[i].StartsWith(JwtHeader, StringComparison.Ordinal))
            {
                jwt = lines[i + 1];
            }
            else if (lines[i].StartsWith(SeedHeader, StringComparison.Ordinal))
            {
                seed = lines[i + 1];
            }
        }

        var hasJwt = jwt is not null && IsJwt(jwt);
        var hasSeed = seed is not null && IsUserSeed(seed);
        problem = (hasJwt, hasSeed) switch
        {
            (true, true) => null,
            (false, false) => $"is not a NATS credentials file: it holds no user JWT (after {JwtHeader}) and no NKey seed (after {SeedHeader})",
            (false, true) => $"is not a NATS credentials file: it holds no user JWT (after {JwtHeader})",
            (true, false) => $"is not a NATS credentials file: it holds no valid user NKey seed (after {SeedHeader})",
        };
        return problem is null ? (jwt!, seed!) : null;
    }

    /// <summary>The seed of an NKey file and its public key; null, with the problem, when it holds no user seed.</summary>
    public static (string Seed, string PublicKey)? ReadNKey(string path, out string? problem)
    {
        if (SettingFile.TryRead(path, out problem) is not { } text)
        {
            return null;
        }

        foreach (var line in Lines(text))
        {
            if (line.StartsWith("SU", StringComparison.Ordinal) && PublicKeyOf(line) is { } publicKey)
            {
                return (line, publicKey);
            }
        }

        problem = "is not an NKey seed file: it holds no valid user seed (a line starting SU)";
        return null;
    }

    /// <summary>Null when the file holds at least one PEM block; else the problem.</summary>
    public static string? PemProblem(string path)
    {
        if (SettingFile.TryRead(path, out var problem) is not { } text)
        {
            return problem;
        }

        var lines = Lines(text);
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith("-----BEGIN ", StringComparison.Ordinal) && lines[i].EndsWith("-----", StringComparison.Ordinal) && lines[i].Length > 16)
            {
                var end = "-----END " + lines[i]["-----BEGIN ".Length..];
                if (lines.Skip(i + 1).Contains(end, StringComparer.Ordinal))
                {
                    return null;
                }
            }
        }

        return "is not a PEM file: it holds no -----BEGIN ...----- to -----END ...----- block";
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.TrimEntries);

    // Three base64url parts (header, claims, signature); the server checks the rest.
    private static bool IsJwt(string text) =>
        text.Split('.') is [var header, var claims, var signature]
        && new[] { header, claims, signature }.All(p => p.Length > 0 && p.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '='));

    private static bool IsUserSeed(string text) => text.StartsWith("SU", StringComparison.Ordinal) && PublicKeyOf(text) is not null;

    private static string? PublicKeyOf(string seed)
    {
        try
        {
            using var pair = KeyPair.FromSeed(seed);
            return pair.GetPublicKey();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Not a seed (bad encoding or checksum): reported without it.
            return null;
        }
    }
}
