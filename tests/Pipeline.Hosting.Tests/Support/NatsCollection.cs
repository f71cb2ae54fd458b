namespace Pipeline.Hosting.Tests.Support;

/// <summary>Every test that needs the real server is in this collection: they share one server and take turns. (xunit finds collection definitions only in the test assembly itself.)</summary>
[CollectionDefinition(Name)]
public sealed class NatsCollection : ICollectionFixture<NatsServerFixture>
{
    public const string Name = "nats-server";
}
