namespace Pipeline.Tests.Claiming;

public sealed class RecentCommandIdsTests
{
    [Fact]
    public void A_second_begin_of_a_running_id_is_a_running_duplicate()
    {
        var recent = new RecentCommandIds(4, slots: 4);

        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", 0, out var first, out _));
        Assert.Equal(RecentIdState.Running, recent.TryBegin("a", 1, out _, out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("b", 1, out var second, out _));
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void A_finished_id_is_a_finished_duplicate()
    {
        var recent = new RecentCommandIds(4, slots: 4);
        recent.TryBegin("a", 0, out _, out _);

        recent.Finish(0);

        Assert.Equal(RecentIdState.Finished, recent.TryBegin("a", 1, out _, out _));
    }

    [Fact]
    public void A_forgotten_id_runs_again()
    {
        var recent = new RecentCommandIds(4, slots: 4);
        recent.TryBegin("a", 0, out var ticket, out _);

        recent.Forget("a", 0, ticket);

        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", 1, out _, out _));
    }

    [Fact]
    public void The_oldest_finished_id_is_evicted_once_capacity_and_slots_are_full()
    {
        // Capacity 3 + 1 slot: four ids are remembered; the fifth evicts the oldest finished one.
        var recent = new RecentCommandIds(3, slots: 1);
        foreach (var id in new[] { "a", "b", "c", "d", "e" })
        {
            Assert.Equal(RecentIdState.Recorded, recent.TryBegin(id, 0, out _, out _));
            recent.Finish(0);
        }

        Assert.Equal(4, recent.Count);
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", 0, out _, out _)); // evicted by "e", so new again (evicting "b")
        recent.Finish(0);
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("c", 0, out _, out _));
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("e", 0, out _, out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("b", 0, out _, out _));
    }

    [Fact]
    public void Running_ids_are_never_evicted_however_many_finish()
    {
        var recent = new RecentCommandIds(2, slots: 2);
        recent.TryBegin("running", 0, out _, out _);
        for (var i = 0; i < 50; i++)
        {
            recent.TryBegin($"f{i}", 1, out _, out _);
            recent.Finish(1);
        }

        Assert.Equal(RecentIdState.Running, recent.TryBegin("running", 1, out _, out _));
        Assert.Equal(4, recent.Count); // the running id and the three newest finished (capacity 2 + 2 slots in all)
    }

    [Fact]
    public void Only_the_delivery_that_recorded_an_id_can_forget_it()
    {
        var recent = new RecentCommandIds(4, slots: 4);
        recent.TryBegin("a", 0, out var old, out _);
        recent.Forget("a", 0, old);
        recent.TryBegin("a", 1, out var current, out _); // the redelivery records it again, in another slot

        recent.Forget("a", 0, old);  // the first delivery's late forget: not its record any more
        recent.Finish(0);            // and its release

        Assert.Equal(RecentIdState.Running, recent.TryBegin("a", 2, out _, out _));
        recent.Finish(1);
        Assert.Equal(RecentIdState.Finished, recent.TryBegin("a", 2, out _, out _));
        Assert.NotEqual(old, current);
    }

    [Fact]
    public void A_slot_reused_by_another_command_does_not_keep_the_old_id_running()
    {
        var recent = new RecentCommandIds(4, slots: 1);
        recent.TryBegin("a", 0, out _, out _);
        recent.Finish(0);
        recent.TryBegin("b", 0, out _, out _); // the same delivery slot, the next pull

        Assert.Equal(RecentIdState.Finished, recent.TryBegin("a", 0, out _, out _));
        Assert.Equal(RecentIdState.Running, recent.TryBegin("b", 0, out _, out _));
    }

    [Fact]
    public void A_full_ring_never_evicts_the_ids_still_running()
    {
        var recent = new RecentCommandIds(1, slots: 3);
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("a", 0, out _, out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("b", 1, out _, out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("c", 2, out _, out _));
        Assert.Equal(RecentIdState.Recorded, recent.TryBegin("d", 2, out _, out _)); // slot 2 reused without a finish: "c" no longer runs

        Assert.Equal(RecentIdState.Running, recent.TryBegin("a", 0, out _, out _));
        Assert.Equal(RecentIdState.Running, recent.TryBegin("b", 0, out _, out _));
    }
}
