using Pipeline.Claiming;

namespace Pipeline.Tests.Claiming;

public sealed class RecentCommandIdsTests
{
    [Fact]
    public void A_second_begin_of_a_running_id_is_a_running_duplicate()
    {
        var recent = new RecentCommandIds(4);

        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", out var first));
        Assert.Equal(RecentIdState.Running, recent.TryBegin("a", out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("b", out var second));
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void A_finished_id_is_a_finished_duplicate()
    {
        var recent = new RecentCommandIds(4);
        recent.TryBegin("a", out var ticket);

        recent.Finish("a", ticket);

        Assert.Equal(RecentIdState.Finished, recent.TryBegin("a", out _));
    }

    [Fact]
    public void A_forgotten_id_runs_again()
    {
        var recent = new RecentCommandIds(4);
        recent.TryBegin("a", out var ticket);

        recent.Forget("a", ticket);

        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", out _));
    }

    [Fact]
    public void The_oldest_finished_id_is_evicted_at_capacity()
    {
        var recent = new RecentCommandIds(3);
        foreach (var id in new[] { "a", "b", "c", "d" })
        {
            Assert.Equal(RecentIdState.Recorded, recent.TryBegin(id, out var ticket));
            recent.Finish(id, ticket);
        }

        Assert.Equal(3, recent.Count);
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", out _)); // evicted by "d", so it is new again
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("c", out _));
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("d", out _));
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("b", out _));
    }

    [Fact]
    public void Running_ids_are_never_evicted_however_many_finish()
    {
        var recent = new RecentCommandIds(2);
        recent.TryBegin("running", out _);
        for (var i = 0; i < 10; i++)
        {
            recent.TryBegin($"f{i}", out var ticket);
            recent.Finish($"f{i}", ticket);
        }

        Assert.Equal(RecentIdState.Running, recent.TryBegin("running", out _));
        Assert.Equal(3, recent.Count); // the running id and the two newest finished
    }

    [Fact]
    public void Only_the_delivery_that_recorded_an_id_can_finish_or_forget_it()
    {
        var recent = new RecentCommandIds(4);
        recent.TryBegin("a", out var old);
        recent.Forget("a", old);
        recent.TryBegin("a", out var current); // the redelivery records it again

        recent.Finish("a", old);  // the first delivery's late finish: not its record any more
        recent.Forget("a", old);

        Assert.Equal(RecentIdState.Running, recent.TryBegin("a", out _));
        recent.Finish("a", current);
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("a", out _));
    }

    [Fact]
    public void An_id_forgotten_and_recorded_again_is_not_evicted_by_its_old_slot()
    {
        var recent = new RecentCommandIds(2);
        recent.TryBegin("a", out var a1);
        recent.Finish("a", a1);   // slot 0
        recent.Forget("a", a1);
        recent.TryBegin("b", out var b);
        recent.Finish("b", b);    // slot 1
        recent.TryBegin("a", out var a2);
        recent.Finish("a", a2);   // slot 0 again
        recent.TryBegin("c", out var c);
        recent.Finish("c", c);    // slot 1: evicts "b", not "a"

        Assert.Equal(RecentIdState.Finished, recent.TryBegin("a", out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("b", out _));
    }
}
