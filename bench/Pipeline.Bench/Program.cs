using BenchmarkDotNet.Running;
using Pipeline.Bench;

if (args.Length > 0 && args[0] == "--quick")
{
    await QuickRun.RunAsync(args);
    return;
}

if (args.Length > 0 && args[0] == "--quick-nats")
{
    await QuickNats.RunAsync(args);
    return;
}

if (args.Length > 0 && args[0] == "--quick-store")
{
    await QuickStore.RunAsync(args);
    return;
}

if (args.Length > 0 && args[0] == "--quick-postgres")
{
    await QuickPostgres.RunAsync(args);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, new BenchConfig());
