using System.Text.RegularExpressions;
using Pipeline.Nats.Publishing;

namespace Pipeline.Nats.Tests.Publishing;

public sealed class NatsCommandPublisherTests
{
    [Theory]
    [InlineData("pipeline.commands.>", "pipeline.commands.7", true)]
    [InlineData("pipeline.commands.>", "pipeline.commands.a.b", true)]
    [InlineData("pipeline.commands.>", "pipeline.commands", false)]
    [InlineData("pipeline.*.x", "pipeline.commands.x", true)]
    [InlineData("pipeline.*.x", "pipeline.commands.y", false)]
    [InlineData("pipeline.*", "pipeline.commands.x", false)]
    [InlineData("a.b", "a.b", true)]
    [InlineData("a.b", "a.b.c", false)]
    public void Subjects_match_as_the_server_matches_them(string pattern, string subject, bool matches) =>
        Assert.Equal(matches, NatsCommandPublisher.SubjectMatches(pattern, subject));

    [Fact]
    public void A_random_traceparent_is_valid_W3C_sampled_and_fresh_each_time()
    {
        var first = NatsCommandPublisher.RandomTraceParent();
        Assert.Matches(new Regex("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$"), first);
        Assert.NotEqual(first, NatsCommandPublisher.RandomTraceParent());
    }
}
