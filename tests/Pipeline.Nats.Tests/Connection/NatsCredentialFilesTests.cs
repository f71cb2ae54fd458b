using NATS.NKeys;
using Pipeline.Nats.Connection;

namespace Pipeline.Nats.Tests.Connection;

/// <summary>
/// The credentials, NKey and PEM files a connection names are checked for what they must hold as
/// the worker starts (a setting error naming the file, never an unreachable server later), and
/// the connection is given their content, so NATS.Net never reads the path itself. Nothing of a
/// file's content is ever quoted.
/// </summary>
public sealed class NatsCredentialFilesTests : IDisposable
{
    // Shaped as nsc writes a user JWT (header.claims.signature, base64url); the server would check it, these tests do not connect.
    private const string Jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIiwibmF0cyI6eyJ0eXBlIjoidXNlciJ9fQ.c2lnbmF0dXJl";
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-nats-creds-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static (string Seed, string PublicKey) NewUser()
    {
        using var pair = KeyPair.CreatePair(PrefixByte.User);
        return (pair.GetSeed(), pair.GetPublicKey());
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The authentication <paramref name="options"/> hand the connection, once they are found free of errors.</summary>
    private static NatsAuthOpts AcceptedAuth(NatsConnectionOptions options)
    {
        Assert.Empty(options.FindErrors());
        return options.ToNatsOpts().AuthOpts;
    }

    private static string Creds(string jwt, string seed) => $"""
        -----BEGIN NATS USER JWT-----
        {jwt}
        ------END NATS USER JWT------

        ************************* IMPORTANT *************************
        NKEY Seed printed below can be used to sign and prove identity.

        -----BEGIN USER NKEY SEED-----
        {seed}
        ------END USER NKEY SEED------
        """;

    [Fact]
    public void A_creds_file_as_nsc_writes_it_is_handed_to_the_connection_by_content_not_path()
    {
        var (seed, _) = NewUser();
        var creds = Write("user.creds", Creds(Jwt, seed));

        var auth = AcceptedAuth(new NatsConnectionOptions { CredsFile = creds });
        Assert.Equal((Jwt, seed), (auth.Jwt, auth.Seed));
        Assert.Null(auth.CredsFile);
    }

    [Theory]
    [InlineData("no-jwt", "no user JWT")]
    [InlineData("no-seed", "no valid user NKey seed")]
    [InlineData("bad-seed", "no valid user NKey seed")]
    [InlineData("garbage", "no user JWT (after -----BEGIN NATS USER JWT-----) and no NKey seed")]
    public void A_creds_file_without_a_jwt_and_a_seed_is_named_with_what_it_lacks_and_nothing_of_its_content(string shape, string lacks)
    {
        var (seed, _) = NewUser();
        var text = shape switch
        {
            "no-jwt" => Creds("hunter2", seed),
            "no-seed" => Creds(Jwt, ""),
            // One character of the key itself changed: the seed's checksum no longer matches. (Not the
            // last character: its low bits are base32 padding, and 'A' to 'B' there left a valid seed.)
            "bad-seed" => Creds(Jwt, seed[..20] + (seed[20] == 'A' ? 'B' : 'A') + seed[21..]),
            _ => "this is not a JWT and an NKey seed: hunter2\n",
        };
        var path = Write("user.creds", text);

        var error = Assert.Single(new NatsConnectionOptions { CredsFile = path }.FindErrors());

        Assert.Equal(nameof(NatsConnectionOptions.CredsFile), error.ParamName);
        Assert.StartsWith($"CredsFile '{path}' is not a NATS credentials file: it holds {lacks}", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(seed[2..12], error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_nkey_file_of_a_seed_alone_is_handed_over_with_its_public_key()
    {
        var (seed, publicKey) = NewUser();
        var path = Write("user.nk", seed + "\n");

        var auth = AcceptedAuth(new NatsConnectionOptions { NKeyFile = path });
        Assert.Equal((seed, publicKey), (auth.Seed, auth.NKey));
        Assert.Null(auth.NKeyFile);
    }

    [Fact]
    public void An_nkey_file_without_a_seed_is_refused_by_name()
    {
        var (_, publicKey) = NewUser();
        var path = Write("user.nk", publicKey + "\n");

        var error = Assert.Single(new NatsConnectionOptions { NKeyFile = path }.FindErrors());

        Assert.Equal($"NKeyFile '{path}' is not an NKey seed file: it holds no valid user seed (a line starting SU).", error.Message.Split(" (Parameter")[0]);
    }

    [Theory]
    [InlineData(nameof(NatsConnectionOptions.TlsCaFile))]
    [InlineData(nameof(NatsConnectionOptions.TlsCertFile))]
    [InlineData(nameof(NatsConnectionOptions.TlsKeyFile))]
    public void A_pem_setting_takes_a_file_with_a_pem_block_and_refuses_one_without(string name)
    {
        var pem = Write("a.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        var text = Write("a.txt", "not a certificate\n");
        NatsConnectionOptions With(string path) => name switch
        {
            nameof(NatsConnectionOptions.TlsCaFile) => new() { TlsCaFile = path },
            // A client certificate and its key go together; the other one is a good PEM file.
            nameof(NatsConnectionOptions.TlsCertFile) => new() { TlsCertFile = path, TlsKeyFile = pem },
            _ => new() { TlsCertFile = pem, TlsKeyFile = path },
        };

        Assert.Empty(With(pem).FindErrors());
        var error = Assert.Single(With(text).FindErrors());
        Assert.Equal(name, error.ParamName);
        Assert.StartsWith($"{name} '{text}' is not a PEM file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_endless_device_or_a_directory_is_refused_for_every_file_setting_without_being_read()
    {
        var cases = new (NatsConnectionOptions Options, string Name)[]
        {
            (new() { CredsFile = "/dev/zero" }, nameof(NatsConnectionOptions.CredsFile)),
            (new() { NKeyFile = "/dev/zero" }, nameof(NatsConnectionOptions.NKeyFile)),
            (new() { TlsCaFile = "/dev/zero" }, nameof(NatsConnectionOptions.TlsCaFile)),
            (new() { TlsCertFile = "/dev/zero", TlsKeyFile = "/dev/zero" }, nameof(NatsConnectionOptions.TlsCertFile)),
        };
        foreach (var (options, name) in cases)
        {
            var error = options.FindErrors()[0];
            Assert.Equal($"{name} '/dev/zero' is not a regular file (a device, a FIFO or a socket).", error.Message.Split(" (Parameter")[0]);
        }

        var directory = Assert.Single(new NatsConnectionOptions { CredsFile = _directory }.FindErrors());
        Assert.StartsWith($"CredsFile '{_directory}' is a directory, not a file.", directory.Message, StringComparison.Ordinal);
    }
}
