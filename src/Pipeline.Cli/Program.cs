using Pipeline.Cli;

return await PipelineCli.InvokeAsync(args, Console.Out, Console.Error, interactive: null);
