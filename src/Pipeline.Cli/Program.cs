using Pipeline.Cli;

using var stop = StopSignals.Listen();
return await PipelineCli.InvokeAsync(args, Console.Out, Console.Error, interactive: null, stop);
