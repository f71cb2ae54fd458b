using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Engine;
using Pipeline.Hosting.Tests.Support;
using Pipeline.Nats.Modules;
using Pipeline.Storage.Postgres.Modules;
using Pipeline.Storage.Sqlite.Modules;

namespace Pipeline.Hosting.Tests;

/// <summary>Options bound from configuration as a deployment writes them, and refused at start in one error line naming every setting that cannot work.</summary>
public sealed class PipelineWorkerOptionsTests
{
    private static IHost Build(Dictionary<string, string?> settings, LogCapture? logs = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        // In the test's process: the outcome is read from the state, the process's exit code left alone.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Pipeline:SetExitCode"] = "false" });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddPipelineWorker();
        builder.Services.AddPipelineNats();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        return builder.Build();
    }

    /// <summary><paramref name="settings"/> with a NATS source at a port nothing listens on: the start fails on settings before any connection is tried.</summary>
    private static Dictionary<string, string?> WithUnreachableNats(Dictionary<string, string?> settings)
    {
        settings["Pipeline:Source"] = "nats";
        settings["Pipeline:Nats:Connection:Url"] = "nats://127.0.0.1:1";
        return settings;
    }

    /// <summary>Starts the host, which must refuse to run (without throwing) and stop itself; the one error line's message.</summary>
    private static async Task<string> StartFailure(Dictionary<string, string?> settings)
    {
        var logs = new LogCapture();
        using var host = Build(settings, logs);
        await host.StartAsync();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();
        await state.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        // The host was told to stop, before running anything: no pipeline was built.
        Assert.True(host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested);
        Assert.False(state.Started.IsCompletedSuccessfully);
        Assert.Equal((PipelineWorkerOutcome.ConfigurationError, 2), (state.Outcome, state.ExitCode));
        await host.StopAsync();
        var errors = logs.Lines.Where(l => l.Level >= LogLevel.Error).ToList();
        var line = Assert.Single(errors);
        Assert.Equal("Pipeline.Hosting", line.Category);
        Assert.Null(line.Exception);
        return line.Message;
    }

    /// <summary>One setting (or pair) that cannot work: the start fails, its one error line naming it. <paramref name="settings"/> is <c>key=value</c> pairs split by ';'.</summary>
    [Theory]
    [InlineData("Pipeline:Source=kafka", "Pipeline:Source 'kafka' is not a known source kind; known: nats, file.")]
    [InlineData("Pipeline:CommandsFile=x.jsonl;Pipeline:Engine:Dispatch:Parallelism=0", "Pipeline:Engine:Dispatch:Parallelism must be from 1 to 4096 (it is 0).")]
    [InlineData("Pipeline:Source=nats", "Pipeline:Nats:Connection:Url is required with Pipeline:Source 'nats'")]
    [InlineData(
        "Pipeline:Source=nats;Pipeline:Nats:Connection:Url=nats://127.0.0.1:1;Pipeline:Engine:MaxInFlight=5000",
        "Pipeline:Nats:Source:MaxAckPending (4096) must be at least MaxInFlight (5000) + FetchBatch (128)")]
    public async Task A_setting_that_cannot_work_fails_the_start_naming_it(string settings, string expected)
    {
        var message = await StartFailure(settings.Split(';').Select(pair => pair.Split('=', 2)).ToDictionary(kv => kv[0], kv => (string?)kv[1]));
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_setting_that_cannot_work_is_named_at_once_by_its_key_as_typed()
    {
        var message = await StartFailure(WithUnreachableNats(new()
        {
            ["Pipeline:Engine:Dispatch:Parallelism"] = "0",
            ["Pipeline:Engine:MaxAttempts"] = "0",
            ["Pipeline:Engine:ToolTimeout"] = "soon",
            ["Pipeline:Engine:SinkFailure"] = "sometimes",
            ["Pipeline:Nats:Source:FetchBatch"] = "0",
            ["Pipeline:Nats:Source:AckWait"] = "00:00:00.500",
            ["Pipeline:Nats:Source:MaxDeliver"] = "many",
        }));

        // Values that cannot be converted, then values out of range: the engine's and the module's, every one.
        string[] expected =
        [
            "Pipeline:Engine:ToolTimeout 'soon' is not a duration ([d.]hh:mm:ss[.fff], e.g. 00:00:30).",
            "Pipeline:Engine:SinkFailure 'sometimes' is not one of backpressure or drop (any case).",
            "Pipeline:Engine:Dispatch:Parallelism must be from 1 to 4096 (it is 0).",
            "Pipeline:Engine:MaxAttempts must be from 1 to 1000 (it is 0).",
            "Pipeline:Nats:Source:MaxDeliver 'many' is not a whole number from -9223372036854775808 to 9223372036854775807.",
            "Pipeline:Nats:Source:AckWait must be from 1 s to 1 day.",
            "Pipeline:Nats:Source:FetchBatch must be from 1 to 10000.",
        ];
        TextAssert.ContainsEach(message, expected);
    }

    /// <summary>
    /// Fifty days is more than a timer takes (about 49.7): every duration that ends in one, the
    /// engine's, the worker's and the NATS module's, is refused at start by its key with the range
    /// the command line's flags have (a day), never accepted to throw when the timer is armed.
    /// </summary>
    [Fact]
    public async Task Every_duration_past_a_day_is_named_at_start_with_its_range()
    {
        const string Long = "50.00:00:00";
        var message = await StartFailure(WithUnreachableNats(new()
        {
            ["Pipeline:Claimer"] = "nats-kv",
            ["Pipeline:Engine:ShutdownTimeout"] = Long,
            ["Pipeline:Engine:SettleTimeout"] = Long,
            ["Pipeline:Engine:ToolTimeout"] = Long,
            ["Pipeline:Engine:ToolRetryDelay"] = Long,
            ["Pipeline:Engine:ToolRetries"] = "11",
            ["Pipeline:ShutdownMargin"] = Long,
            ["Pipeline:Telemetry:MetricInterval"] = Long,
            ["Pipeline:Nats:Connection:ConnectTimeout"] = Long,
            ["Pipeline:Nats:Source:AckWait"] = Long,
            ["Pipeline:Nats:Source:SettleTimeout"] = Long,
            ["Pipeline:Nats:Source:IdleTimeout"] = Long,
            ["Pipeline:Nats:Claimer:RecordTimeout"] = Long,
        }));

        string[] expected =
        [
            "Pipeline:Engine:ShutdownTimeout must be from 0 to 1 day (it is 50.00:00:00).",
            "Pipeline:Engine:SettleTimeout must be more than 0 and at most 1 day (it is 50.00:00:00).",
            "Pipeline:Engine:ToolTimeout must be more than 0 and at most 1 day (it is 50.00:00:00).",
            "Pipeline:Engine:ToolRetryDelay must be from 0 to 1 day (it is 50.00:00:00).",
            "Pipeline:Engine:ToolRetries must be from 0 to 10 (it is 11).",
            "Pipeline:ShutdownMargin must be from 0 to 1 day (it is 50.00:00:00).",
            "Pipeline:Telemetry:MetricInterval must be more than 0 and at most 1 day (it is 50.00:00:00).",
            "Pipeline:Nats:Connection:ConnectTimeout must be more than 0 and at most 1 day.",
            "Pipeline:Nats:Source:AckWait must be from 1 s to 1 day.",
            "Pipeline:Nats:Source:SettleTimeout must be more than 0 and at most 1 day.",
            "Pipeline:Nats:Source:IdleTimeout must be more than 0 and at most 1 day (or null: never).",
            "Pipeline:Nats:Claimer:RecordTimeout must be more than 0 and at most 1 day.",
        ];
        TextAssert.ContainsEach(message, expected);
    }

    [Fact]
    public async Task A_number_that_cannot_be_read_is_named_with_the_settings_own_range_not_its_types()
    {
        var message = await StartFailure(new()
        {
            ["Pipeline:CommandsFile"] = "x.jsonl",
            ["Pipeline:Engine:MaxInFlight"] = "lots",
            ["Pipeline:Engine:Dispatch:Parallelism"] = "99999999999",
            ["Pipeline:Engine:ToolRetries"] = "some",
        });

        TextAssert.ContainsEach(
            message,
            "Pipeline:Engine:MaxInFlight 'lots' is not a whole number from 1 to 1048576.",
            "Pipeline:Engine:Dispatch:Parallelism '99999999999' is not a whole number from 1 to 4096.",
            "Pipeline:Engine:ToolRetries 'some' is not a whole number from 0 to 10.");
        Assert.DoesNotContain("2147483647", message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A credentials file that is a device (read without end) or holds no credentials is a setting
    /// error at start naming its key, never a server that seems unreachable once the worker runs.
    /// </summary>
    [Fact]
    public async Task A_creds_file_that_is_a_device_or_not_credentials_is_named_at_start_by_its_key()
    {
        var garbage = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(garbage, "not a JWT and an NKey seed\n");
            var message = await StartFailure(WithUnreachableNats(new()
            {
                ["Pipeline:Nats:Connection:CredsFile"] = "/dev/zero",
                ["Pipeline:Nats:Connection:NKeyFile"] = garbage,
            }));

            Assert.Contains("Pipeline:Nats:Connection:CredsFile '/dev/zero' is not a regular file (a device, a FIFO or a socket).", message, StringComparison.Ordinal);
            Assert.Contains($"Pipeline:Nats:Connection:NKeyFile '{garbage}' is not an NKey seed file", message, StringComparison.Ordinal);
            Assert.DoesNotContain("unreachable", message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(garbage);
        }
    }

    /// <summary>
    /// A worker configured from a section other than <c>Pipeline</c> (<c>AddPipelineWorker(configuration.GetSection("Orders"))</c>)
    /// is told what is wrong in the keys it typed: the range checks, the file module's and a
    /// module's section name <c>Orders:...</c> as the conversion errors do, never a <c>Pipeline:...</c>
    /// key the deployment does not have.
    /// </summary>
    [Fact]
    public async Task A_worker_bound_from_another_section_names_every_error_under_that_section()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Orders:SetExitCode"] = "false",
            ["Orders:Engine:ToolTimeout"] = "soon",
            ["Orders:Engine:MaxAttempts"] = "0",
            ["Orders:Source"] = "nats",
            ["Orders:Nats:Connection:Url"] = "nats://127.0.0.1:1",
            ["Orders:Nats:Source:FetchBatch"] = "0",
        });
        builder.Services.AddPipelineWorker(builder.Configuration.GetSection("Orders"));
        builder.Services.AddPipelineNats();
        using var host = builder.Build();
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        await host.StartAsync();
        await state.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        await host.StopAsync();

        Assert.Equal(PipelineWorkerOutcome.ConfigurationError, state.Outcome);
        Assert.Equal(
            [
                "Orders:Engine:ToolTimeout 'soon' is not a duration ([d.]hh:mm:ss[.fff], e.g. 00:00:30).",
                "Orders:Engine:MaxAttempts must be from 1 to 1000 (it is 0).",
                "Orders:Nats:Source:FetchBatch must be from 1 to 10000.",
            ],
            state.ConfigurationErrors);
    }

    [Theory]
    [InlineData("after-dispatch", AckMode.AckAfterDispatch)]
    [InlineData("Before-Dispatch", AckMode.AckBeforeDispatch)]
    [InlineData("AckAfterDispatch", AckMode.AckAfterDispatch)]
    [InlineData("ackbeforedispatch", AckMode.AckBeforeDispatch)]
    public void The_ack_mode_binds_from_its_command_line_spelling_and_its_name_in_any_case(string value, AckMode expected)
    {
        using var host = Build(new() { ["Pipeline:Engine:AckMode"] = value, ["Pipeline:Engine:SinkFailure"] = "DROP", ["Pipeline:Engine:FailedClaimAction"] = "nack" });
        var options = host.Services.GetRequiredService<PipelineWorkerSection>().CreateOptions();

        Assert.Equal(expected, options.Engine.AckMode);
        Assert.Equal(SinkFailureAction.Drop, options.Engine.SinkFailure);
        Assert.Equal(FailedClaimAction.Nack, options.Engine.FailedClaimAction);
    }

    [Fact]
    public async Task A_bad_enum_value_lists_the_accepted_spellings()
    {
        var message = await StartFailure(new() { ["Pipeline:Engine:AckMode"] = "2", ["Pipeline:Engine:FailedClaimAction"] = "retry" });

        Assert.Contains("Pipeline:Engine:AckMode '2' is not one of before-dispatch, after-dispatch, AckBeforeDispatch or AckAfterDispatch (any case).", message, StringComparison.Ordinal);
        Assert.Contains("Pipeline:Engine:FailedClaimAction 'retry' is not one of terminate or nack (any case).", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_keys_are_one_warning_naming_each_as_typed_and_the_worker_still_runs()
    {
        var logs = new LogCapture();
        using var host = Build(
            new()
            {
                ["Pipeline:CommandsFile"] = Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl"),
                ["Pipeline:Engine:Dispatch:Paralelism"] = "4",
                ["Pipeline:Nats:Source:AckWiat"] = "00:01:00",
                ["Pipeline:Enigne:MaxInFlight"] = "8",
                ["pipeline:colour"] = "blue",
                ["Pipeline:Engine:MAXATTEMPTS"] = "3",
            },
            logs);
        var state = host.Services.GetRequiredService<PipelineWorkerState>();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(PipelineWorkerOutcome.Succeeded, state.Outcome);
        var warning = Assert.Single(logs.Lines, l => l.Level == LogLevel.Warning && l.Category == "Pipeline.Hosting");
        Assert.Equal(
            "settings under Pipeline that nothing reads, ignored: Pipeline:colour, Pipeline:Engine:Dispatch:Paralelism (did you mean Pipeline:Engine:Dispatch:Parallelism?), "
            + "Pipeline:Enigne (did you mean Pipeline:Engine?), Pipeline:Nats:Source:AckWiat (did you mean Pipeline:Nats:Source:AckWait?)",
            warning.Message);
    }

    [Fact]
    public async Task A_module_s_section_is_unknown_while_the_module_is_not_registered()
    {
        var logs = new LogCapture();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:SetExitCode"] = "false",
            ["Pipeline:CommandsFile"] = Path.Combine(AppContext.BaseDirectory, "samples", "commands.jsonl"),
            ["Pipeline:Nats:Connection:Url"] = "nats://127.0.0.1:4222",
        });
        builder.AddPipelineWorker();
        builder.Logging.AddProvider(logs);
        using var host = builder.Build();

        await host.RunAsync().WaitAsync(TimeSpan.FromSeconds(30));

        var warning = Assert.Single(logs.Lines, l => l.Level == LogLevel.Warning && l.Category == "Pipeline.Hosting");
        Assert.EndsWith("ignored: Pipeline:Nats", warning.Message, StringComparison.Ordinal);
    }

    private static string SamplePath => Path.Combine(AppContext.BaseDirectory, "samples", "appsettings.json");

    /// <summary>
    /// Every public settable property of the options records as its configuration key, with the
    /// value <c>new XOptions()</c> gives it (the documented default): the worker's records and the
    /// sections of the NATS, SQLite and PostgreSQL modules. A section that is none by default (the
    /// NATS connection) has its record's own defaults. Found by reflection, so a new option is in
    /// this list unasked.
    /// </summary>
    private static Dictionary<string, object?> OptionsByKey(PipelineWorkerOptions worker, NatsWorkerOptions nats, SqliteWorkerOptions sqlite, PostgresWorkerOptions postgres)
    {
        var keys = new Dictionary<string, object?>(StringComparer.Ordinal);
        Walk("Pipeline", worker, keys);
        Walk("Pipeline:Nats", nats, keys);
        Walk($"Pipeline:{SqliteModule.ConfigurationSection}", sqlite, keys);
        Walk($"Pipeline:{PostgresModule.ConfigurationSection}", postgres, keys);
        return keys;

        static void Walk(string path, object record, Dictionary<string, object?> keys)
        {
            foreach (var property in record.GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance).Where(p => p.SetMethod is { IsPublic: true }))
            {
                var key = $"{path}:{property.Name}";
                var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
                var value = property.GetValue(record);
                if (type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(TimeSpan) || type == typeof(Uri))
                {
                    keys[key] = value;
                }
                else if (typeof(IEnumerable<string>).IsAssignableFrom(type))
                {
                    keys[key] = value is null ? null : string.Join("|", (IEnumerable<string>)value);
                }
                else
                {
                    Walk(key, value ?? Activator.CreateInstance(type)!, keys);
                }
            }
        }
    }

    [Fact]
    public void The_sample_settings_show_every_option_and_no_other_key()
    {
        var sample = SampleSettings.Read(SamplePath);
        var options = OptionsByKey(new PipelineWorkerOptions(), new NatsWorkerOptions(), new SqliteWorkerOptions(), new PostgresWorkerOptions()).Keys;

        // A new option without its line in the sample fails here; so does a key the sample misspells.
        var missing = options.Where(k => !sample.Shown.Contains(k)).ToList();
        Assert.True(missing.Count == 0, $"not in the sample: {string.Join(", ", missing)}");
        var unknown = sample.Shown.Where(k => !options.Contains(k)).ToList();
        Assert.True(unknown.Count == 0, $"in the sample, but no option: {string.Join(", ", unknown)}");
    }

    [Fact]
    public void The_sample_settings_bind_to_exactly_the_defaults_but_for_the_values_marked_as_examples()
    {
        var sample = SampleSettings.Read(SamplePath);
        var section = new ConfigurationBuilder().AddJsonFile(SamplePath).Build().GetSection("Pipeline");

        var errors = new List<string>();
        var bound = OptionsByKey(
            PipelineWorkerServiceCollectionExtensions.Bind(section),
            NatsModule.Bind(section.GetSection("Nats")),
            new SqliteModule().Bind(section.GetSection(SqliteModule.ConfigurationSection), $"Pipeline:{SqliteModule.ConfigurationSection}", errors),
            new PostgresModule().Bind(section.GetSection(PostgresModule.ConfigurationSection), $"Pipeline:{PostgresModule.ConfigurationSection}", errors));
        Assert.Empty(errors);

        var defaults = OptionsByKey(new PipelineWorkerOptions(), new NatsWorkerOptions(), new SqliteWorkerOptions(), new PostgresWorkerOptions());
        var differing = defaults.Where(d => !sample.Examples.Contains(d.Key) && !Equals(d.Value, bound[d.Key])).Select(d => $"{d.Key}: default {d.Value}, sample {bound[d.Key]}").ToList();
        Assert.True(differing.Count == 0, string.Join("\n", differing));
        Assert.Equal(["Pipeline:CommandsFile"], sample.Examples);
        Assert.Equal("file", new PipelineWorkerOptions().Source);
    }

    [Fact]
    public void Keys_as_appsettings_environment_variables_and_the_command_line_write_them_bind_to_the_records()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:Source"] = "nats",
            ["Pipeline:Events"] = "nats",
            ["Pipeline:Engine:ShutdownTimeout"] = "00:02:00",
            ["Pipeline:Engine:SinkFailure"] = "Drop",
            ["Pipeline:Engine:AckMode"] = "AckAfterDispatch",
        });
        // PIPELINE__ENGINE__DISPATCH__PARALLELISM: configuration keys are case-insensitive, '__' is ':'.
        Environment.SetEnvironmentVariable("PIPELINE__ENGINE__DISPATCH__PARALLELISM", "64");
        Environment.SetEnvironmentVariable("PIPELINE__NATS__CONNECTION__URL", "nats://127.0.0.1:4333");
        try
        {
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(["--Pipeline:Nats:Source:Stream=orders", "--Pipeline:Nats:KvClaimer=true"]);
            builder.AddPipelineWorker();
            builder.Services.AddPipelineNats();
            using var host = builder.Build();
            var options = host.Services.GetRequiredService<IOptions<PipelineWorkerOptions>>().Value;
            var nats = NatsModule.Bind(builder.Configuration.GetSection("Pipeline:Nats"));

            Assert.Equal("nats", options.Source);
            Assert.Equal(64, options.Engine.Dispatch.Parallelism);
            Assert.Equal(1, options.Engine.Claim.Parallelism);
            Assert.Equal(SinkFailureAction.Drop, options.Engine.SinkFailure);
            Assert.Equal(AckMode.AckAfterDispatch, options.Engine.AckMode);
            Assert.Equal("nats://127.0.0.1:4333", nats.Connection!.Url);
            Assert.Equal("orders", nats.Source.Stream);
            Assert.Equal("pipeline-workers", nats.Source.Consumer);
            Assert.True(nats.KvClaimer);

            // The host waits for the whole drain, the last settles and a margin: 120 + 5 + 5 s.
            Assert.Equal(TimeSpan.FromSeconds(130), host.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PIPELINE__ENGINE__DISPATCH__PARALLELISM", null);
            Environment.SetEnvironmentVariable("PIPELINE__NATS__CONNECTION__URL", null);
        }
    }

    [Fact]
    public void A_list_in_configuration_replaces_the_default_rather_than_adding_to_it()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:CommandsFile"] = "x.jsonl",
            ["Pipeline:Nats:Source:Subjects:0"] = "orders.>",
        }).Build();
        Assert.Equal(["orders.>"], NatsModule.Bind(configuration.GetSection("Pipeline:Nats")).Source.Subjects);
    }

    [Fact]
    public void The_host_shutdown_timeout_is_never_lowered()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMinutes(10));
        builder.Services.AddPipelineWorker(o => o with { CommandsFile = "x.jsonl", Engine = o.Engine with { ShutdownTimeout = TimeSpan.FromSeconds(1) } });
        using var host = builder.Build();
        Assert.Equal(TimeSpan.FromMinutes(10), host.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }
}
