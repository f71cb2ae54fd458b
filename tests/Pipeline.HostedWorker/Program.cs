using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Pipeline.Hosting;

// The README's hosting snippet, as a .NET developer writes it: settings from appsettings.json,
// environment variables and the command line (--Pipeline:CommandsFile=...); the exit code is the run's.
var builder = Host.CreateApplicationBuilder(args);
builder.AddPipelineWorker();
builder.Services.AddPipelineNats();
builder.Build().Run();
