using Pipeline.Claiming;

namespace Pipeline.Tests.Claiming;

public sealed class RecentCommandIdsTests
{
    [Fact]
    public void A_second_begin_of_the_same_id_is_a_duplicate()
    {
        var recent = new RecentCommandIds(4);

        Assert.True(recent.TryBegin("a"));
        Assert.False(recent.TryBegin("a"));
        Assert.True(recent.TryBegin("b"));
    }

    [Fact]
    public void A_forgotten_id_runs_again()
    {
        var recent = new RecentCommandIds(4);
        recent.TryBegin("a");

        recent.Forget("a");

        Assert.True(recent.TryBegin("a"));
    }

    [Fact]
    public void The_oldest_id_is_evicted_at_capacity()
    {
        var recent = new RecentCommandIds(3);
        foreach (var id in new[] { "a", "b", "c", "d" })
        {
            Assert.True(recent.TryBegin(id));
        }

        Assert.Equal(3, recent.Count);
        Assert.True(recent.TryBegin("a"));   // evicted by "d", so it is new again (and evicts "b")
        Assert.False(recent.TryBegin("c"));
        Assert.False(recent.TryBegin("d"));
        Assert.True(recent.TryBegin("b"));
    }

    [Fact]
    public void An_id_forgotten_and_begun_again_is_not_evicted_by_its_old_slot()
    {
        var recent = new RecentCommandIds(2);
        recent.TryBegin("a");   // slot 0
        recent.Forget("a");
        recent.TryBegin("b");   // slot 1
        recent.TryBegin("a");   // slot 0 again, sequence 2
        recent.TryBegin("c");   // slot 1: evicts "b", not "a"

        Assert.False(recent.TryBegin("a"));
        Assert.True(recent.TryBegin("b"));
    }
}
