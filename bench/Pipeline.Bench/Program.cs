using BenchmarkDotNet.Running;
using Pipeline.Bench;

BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, new BenchConfig());
