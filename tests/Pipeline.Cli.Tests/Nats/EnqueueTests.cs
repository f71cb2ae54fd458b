using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using NATS.Client.Core;
using Pipeline.Commands;
using Pipeline.Nats.Modules;

namespace Pipeline.Cli.Tests.Nats;

/// <summary><c>pipeline enqueue</c> against a real nats-server: in process, and as the real apphost where it is about the process.</summary>
[Collection(NatsCollection.Name)]
public sealed partial class EnqueueTests(NatsServerFixture nats, ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipeline-enqueue-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    internal static string Line(string id, long execution = 7) =>
        $$$"""{"command_id":"{{{id}}}","execution_id":{{{execution}}},"step":"s","tool_kind":"noop","input":{}}""";

    [Fact]
    public async Task Every_command_is_in_the_stream_with_a_traceparent_and_its_command_id_as_message_id()
    {
        var (stream, prefix) = Names();
        var file = Write("c.jsonl", Enumerable.Range(0, 1000).Select(i => Line($"c{i}", i % 7)));

        var (exit, stdout, stderr) = await InvokeAsync(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".{execution_id}", file]);

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("enqueued 1000 commands", stdout, StringComparison.Ordinal);
        var messages = await ReadAllAsync(stream);
        Assert.Equal(1000, messages.Count);
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"c{i}"), messages.Select(m => Command.Parse(m.Data).CommandId));
        Assert.All(messages, m =>
        {
            Assert.Matches(TraceParent(), (string?)m.Headers!["traceparent"]);
            Assert.Equal(Command.Parse(m.Data).CommandId, (string?)m.Headers!["Nats-Msg-Id"]);
            Assert.Equal($"{prefix}.{Command.Parse(m.Data).ExecutionId}", m.Subject);
        });
        Assert.Equal(1000, messages.Select(m => (string?)m.Headers!["traceparent"]).Distinct().Count());
    }

    [Fact]
    public async Task With_a_listener_each_traceparent_is_a_producer_span_named_after_the_subject()
    {
        var (stream, prefix) = Names();
        var file = Write("c.jsonl", [Line("t1", 5), Line("t2", 5)]);
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Pipeline",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (spans)
                {
                    spans.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        var (exit, stdout, stderr) = await InvokeAsync(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".{execution_id}", file]);

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        var ours = spans.Where(s => s.DisplayName == $"{prefix}.5 publish").ToList();
        Assert.Equal(2, ours.Count);
        Assert.All(ours, s => Assert.Equal(ActivityKind.Producer, s.Kind));
        var headers = (await ReadAllAsync(stream)).Select(m => (string?)m.Headers!["traceparent"]).ToHashSet();
        Assert.Equal(ours.Select(s => s.Id).ToHashSet(), headers);
    }

    [Fact]
    public async Task Malformed_lines_are_reported_by_number_and_not_published()
    {
        var (stream, prefix) = Names();
        var file = Write("m.jsonl", [Line("ok1"), "not json", """{"command_id":"x"}""", "", Line("ok2"), "{\"command_id\":\"long\",\"pad\":\"" + new string('a', 300) + "\"}"]);

        var (exit, stdout, stderr) = await InvokeAsync(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".x", "--max-line-bytes", "200", file]);

        Assert.True(exit == 1, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("m.jsonl line 2: malformed command", stderr, StringComparison.Ordinal);
        Assert.Contains("m.jsonl line 3: malformed command", stderr, StringComparison.Ordinal);
        Assert.Contains("m.jsonl line 6: line is longer than the limit of 200 bytes", stderr, StringComparison.Ordinal);
        Assert.Contains("3 malformed lines not published", stdout, StringComparison.Ordinal);
        Assert.Equal(["ok1", "ok2"], (await ReadAllAsync(stream)).Select(m => Command.Parse(m.Data).CommandId));
    }

    [Fact]
    public async Task A_rerun_is_dropped_by_the_stream_as_duplicates_and_exits_0()
    {
        var (stream, prefix) = Names();
        var file = Write("d.jsonl", [Line("d1"), Line("d2")]);
        string[] args = ["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".x", file];

        Assert.Equal(0, (await InvokeAsync(args)).Exit);
        var (exit, stdout, stderr) = await InvokeAsync(args);

        Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
        Assert.Contains("2 already in the stream", stdout, StringComparison.Ordinal);
        Assert.Equal(2, (await ReadAllAsync(stream)).Count);
    }

    [Fact]
    public async Task A_subject_the_existing_stream_does_not_store_is_a_usage_error()
    {
        var (stream, prefix) = Names();
        await using (var connection = nats.Connect())
        {
            await new NatsJSContext(connection).CreateStreamAsync(new StreamConfig(stream, [prefix + ".a.>"]));
        }

        var (exit, _, stderr) = await InvokeAsync(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".b.{execution_id}", Write("s.jsonl", [Line("s1")])]);

        Assert.Equal(ExitCodes.UsageError, exit);
        Assert.Contains($"subject '{prefix}.b.0' is not stored by stream '{stream}'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Standard_input_is_read_by_the_real_process()
    {
        var (stream, prefix) = Names();
        using var process = PipelineProcess.Start(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".x", "-"], stdin: Line("in1") + "\n" + Line("in2") + "\n");

        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 0, $"exit {exit}\n{process.Stdout}\n{process.Stderr}");
        Assert.Contains("enqueued 2 commands from stdin", process.Stdout, StringComparison.Ordinal);
        Assert.Equal(["in1", "in2"], (await ReadAllAsync(stream)).Select(m => Command.Parse(m.Data).CommandId));
    }

    [Fact]
    public async Task No_server_on_the_port_is_a_clear_error_naming_the_redacted_url()
    {
        var port = LoopbackPort.Free();
        using var process = PipelineProcess.Start(["enqueue", "--nats", $"nats://ops:s3cret-in-url@127.0.0.1:{port}", Write("c.jsonl", [Line("c1")])]);

        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(exit == 1, $"exit {exit}\n{process.Stdout}\n{process.Stderr}");
        Assert.Contains($"error: cannot reach NATS at nats://***@127.0.0.1:{port}", process.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-in-url", process.Stdout + process.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_accepts_and_never_answers_is_an_error_in_bounded_time()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        using var process = PipelineProcess.Start(["enqueue", "--nats", $"nats://127.0.0.1:{port}", Write("c.jsonl", [Line("c1")])]);

        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"exit {exit} after {process.Elapsed.TotalSeconds:F1} s: {process.Stderr}");

        Assert.True(exit == 1, $"exit {exit}\n{process.Stdout}\n{process.Stderr}");
        Assert.Contains($"error: cannot reach NATS at nats://127.0.0.1:{port}", process.Stderr, StringComparison.Ordinal);
        Assert.True(process.Elapsed < EnqueueCommand.StartBound + TimeSpan.FromSeconds(8), $"took {process.Elapsed}");
    }

    [Fact]
    public async Task A_server_killed_mid_run_stops_the_enqueue_in_bounded_time_with_one_clear_error()
    {
        // Its own server: killing the shared one would disturb the other tests.
        var server = new NatsServerFixture();
        await WithServerAsync(server, async () =>
        {
            var (stream, prefix) = Names();
            var file = Write("k.jsonl", Enumerable.Range(0, 2_000_000).Select(i => Line($"k{i}", i)));
            using var process = PipelineProcess.Start(["enqueue", "--nats", server.Url, "--stream", stream, "--subject", prefix + ".{execution_id}", file]);
            await process.WaitForOutputAsync("progress: published", TimeSpan.FromSeconds(60));
            await server.KillAsync();
            var killedAt = process.Elapsed;

            var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
            output.WriteLine($"exit {exit} {(process.Elapsed - killedAt).TotalSeconds:F1} s after the kill\n{process.Stdout[^Math.Min(400, process.Stdout.Length)..]}\n{process.Stderr}");

            Assert.True(exit == 1, $"exit {exit}\n{process.Stderr}");
            Assert.True(process.Elapsed - killedAt < TimeSpan.FromSeconds(30), $"took {process.Elapsed - killedAt} after the kill");
            Assert.Contains($"error: publishing to {server.Url} stopped: ", process.Stderr, StringComparison.Ordinal);
            // One line for the failure that stopped it, not one per publish in flight.
            Assert.True(process.Stderr.Split('\n').Count(l => l.Contains("not published:", StringComparison.Ordinal)) <= 1, process.Stderr);
            Assert.DoesNotContain("enqueued 2000000 commands", process.Stdout, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task User_and_password_work_from_the_environment_and_wrong_ones_are_an_error_without_the_secret()
    {
        var server = new NatsServerFixture { ExtraArguments = ["--user", "alice", "--pass", "right-pa55word"], Auth = NatsAuthOpts.Default with { Username = "alice", Password = "right-pa55word" } };
        await WithServerAsync(server, async () =>
        {
            var (stream, prefix) = Names();
            var file = Write("a.jsonl", [Line("a1")]);
            using (var right = PipelineProcess.Start(
                ["enqueue", "--nats", server.Url, "--nats-user", "alice", "--stream", stream, "--subject", prefix + ".x", file],
                environment: new Dictionary<string, string> { [NatsCommandLine.PasswordVariable] = "right-pa55word" }))
            {
                var exit = await right.WaitForExitAsync(TimeSpan.FromSeconds(60));
                Assert.True(exit == 0, $"exit {exit}\n{right.Stdout}\n{right.Stderr}");
            }

            foreach (var args in new[]
            {
                new[] { "--nats", server.Url, "--nats-user", "alice", "--nats-password", "wr0ng-flag-secret" },
                new[] { "--nats", server.Url.Replace("nats://", "nats://alice:wr0ng-url-secret@", StringComparison.Ordinal) },
            })
            {
                using var wrong = PipelineProcess.Start(["enqueue", .. args, "--stream", stream, "--subject", prefix + ".x", file]);
                var exit = await wrong.WaitForExitAsync(TimeSpan.FromSeconds(30));
                output.WriteLine(wrong.Stderr);
                Assert.True(exit == 1, $"exit {exit}\n{wrong.Stdout}\n{wrong.Stderr}");
                Assert.Contains("error: cannot reach NATS at nats://", wrong.Stderr, StringComparison.Ordinal);
                Assert.Contains("Authorization Violation", wrong.Stderr, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain("wr0ng-", wrong.Stdout + wrong.Stderr, StringComparison.Ordinal);
            }
        });
    }

    [Fact]
    public async Task A_token_works_and_a_wrong_one_is_an_error_without_the_secret()
    {
        var server = new NatsServerFixture { ExtraArguments = ["--auth", "right-t0ken"], Auth = NatsAuthOpts.Default with { Token = "right-t0ken" } };
        await WithServerAsync(server, async () =>
        {
            var (stream, prefix) = Names();
            var file = Write("t.jsonl", [Line("t1")]);
            var (exit, stdout, stderr) = await InvokeAsync(["enqueue", "--nats", server.Url, "--nats-token", "right-t0ken", "--stream", stream, "--subject", prefix + ".x", file]);
            Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");

            using var wrong = PipelineProcess.Start(
                ["enqueue", "--nats", server.Url, "--stream", stream, "--subject", prefix + ".x", file],
                environment: new Dictionary<string, string> { [NatsCommandLine.TokenVariable] = "wr0ng-t0ken" });
            exit = await wrong.WaitForExitAsync(TimeSpan.FromSeconds(30));
            Assert.True(exit == 1, $"exit {exit}\n{wrong.Stdout}\n{wrong.Stderr}");
            Assert.Contains("Authorization Violation", wrong.Stderr, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("wr0ng-t0ken", wrong.Stdout + wrong.Stderr, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task Tls_with_the_servers_ca_works_and_without_it_or_against_a_plain_server_is_a_clear_error()
    {
        var (cert, key) = SelfSignedLoopbackCertificate();
        var server = new NatsServerFixture
        {
            ExtraArguments = ["--tls", "--tlscert", cert, "--tlskey", key],
            Tls = NatsTlsOpts.Default with { Mode = TlsMode.Require, CaFile = cert },
        };
        await WithServerAsync(server, async () =>
        {
            var (stream, prefix) = Names();
            var file = Write("tls.jsonl", [Line("tls1")]);
            var tlsUrl = server.Url.Replace("nats://", "tls://", StringComparison.Ordinal);

            var (exit, stdout, stderr) = await InvokeAsync(["enqueue", "--nats", tlsUrl, "--tls-ca", cert, "--stream", stream, "--subject", prefix + ".x", file]);
            Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");

            (exit, _, stderr) = await InvokeAsync(["enqueue", "--nats", tlsUrl, "--stream", stream, "--subject", prefix + ".x", file]);
            Assert.Equal(1, exit);
            Assert.Contains("certificate", stderr, StringComparison.OrdinalIgnoreCase);

            (exit, _, stderr) = await InvokeAsync(["enqueue", "--nats", nats.Url, "--tls-require", "--stream", stream, "--subject", prefix + ".x", file]);
            Assert.Equal(1, exit);
            Assert.Contains("does not support TLS", stderr, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task A_big_file_is_published_in_bounded_memory()
    {
        // Measured on a 2-core VM: ~85 MB peak RSS for 300,000 commands, whatever the count (the
        // window holds 256). Holding them all would take far more than the bound.
        const int Count = 200_000;
        const long PeakRssBound = 130_000_000;
        var (stream, prefix) = Names();
        var file = Write("big.jsonl", Enumerable.Range(0, Count).Select(i => Line($"big-{i}-{new string('p', 200)}", i)));

        using var process = PipelineProcess.Start(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", prefix + ".{execution_id}", file]);
        var exit = await process.WaitForExitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine($"exit {exit}, peak RSS {process.PeakRssBytes:N0} bytes, {process.Elapsed.TotalSeconds:F1} s\n{process.Stdout[^Math.Min(300, process.Stdout.Length)..]}");

        Assert.True(exit == 0, $"exit {exit}\n{process.Stderr}");
        Assert.Contains($"enqueued {Count} commands", process.Stdout, StringComparison.Ordinal);
        Assert.True(process.PeakRssBytes > 0, "no memory sample was taken");
        Assert.True(process.PeakRssBytes < PeakRssBound, $"peak RSS {process.PeakRssBytes:N0} bytes; the bound is {PeakRssBound:N0}");
        await using var connection = nats.Connect();
        var info = await new NatsJSContext(connection).GetStreamAsync(stream);
        Assert.Equal(Count, info.Info.State.Messages);
    }

    [Fact]
    public async Task A_line_over_the_servers_max_payload_is_reported_truthfully()
    {
        var (stream, _) = Names();
        await using (var setup = nats.Connect())
        {
            await JetStream.CreateStreamAsync(setup, stream, $"{stream}.>");
        }

        var big = $$$"""{"command_id":"big","execution_id":1,"step":"s","tool_kind":"echo","input":{"s":"{{{new string('x', 2 * 1024 * 1024)}}}"}}""";
        var path = Write("big.jsonl", [big, .. Enumerable.Range(0, 10).Select(i => Line($"after{i}"))]);

        using var enqueue = PipelineProcess.Start(["enqueue", "--nats", nats.Url, "--stream", stream, "--subject", $"{stream}.cmd", "--max-line-bytes", "8388608", path]);
        var exit = await enqueue.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        await using var connection = nats.Connect();
        var info = await new NatsJSContext(connection).GetStreamAsync(stream);
        if (info.Info.State.Messages == 10)
        {
            Assert.DoesNotContain("the rest of the input was not published", enqueue.Stderr, StringComparison.Ordinal);
        }
    }

    /// <summary>Starts a server of the test's own (auth, TLS), runs <paramref name="test"/> on it, and stops it.</summary>
    private static async Task WithServerAsync(NatsServerFixture server, Func<Task> test)
    {
        await server.InitializeAsync();
        try
        {
            await test();
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static (string Stream, string Prefix) Names()
    {
        var stream = NatsServerFixture.UniqueName("enq");
        return (stream, stream.Replace('_', '-'));
    }

    private string Write(string name, IEnumerable<string> lines)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> InvokeAsync(string[] args) => await InProcessCli.RunAsync(args);

    private async Task<List<INatsJSMsg<byte[]>>> ReadAllAsync(string stream)
    {
        await using var connection = nats.Connect();
        var js = new NatsJSContext(connection);
        var consumer = await js.CreateOrderedConsumerAsync(stream);
        var messages = new List<INatsJSMsg<byte[]>>();
        await foreach (var message in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 100_000 }))
        {
            messages.Add(message);
        }

        return messages;
    }

    private (string Cert, string Key) SelfSignedLoopbackCertificate()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=127.0.0.1", rsa, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        var names = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var (cert, key) = (Path.Combine(_directory, "server-cert.pem"), Path.Combine(_directory, "server-key.pem"));
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        File.WriteAllText(key, rsa.ExportPkcs8PrivateKeyPem());
        return (cert, key);
    }

    [GeneratedRegex("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")]
    private static partial Regex TraceParent();
}
