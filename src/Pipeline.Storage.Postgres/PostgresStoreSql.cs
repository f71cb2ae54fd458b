namespace Pipeline.Storage.Postgres;

/// <summary>
/// The store's statements for one schema (the tables: <see cref="PostgresSchema"/>). Every
/// statement that changes a session's batches runs after the session's row is locked, by an
/// earlier statement of the same transaction or within the statement, and the session row is
/// brought up to date in the same transaction, so a claimer that holds the row sees the session as
/// it is. Times come from the database (<c>clock_timestamp()</c>, read once per statement in the
/// <c>clock</c> CTE), never from the caller.
/// </summary>
internal sealed class PostgresStoreSql
{
    public PostgresStoreSql(string schema)
    {
        var s = schema;

        // Whether unsettled batch b (joined to its session s) is held by the session's claim.
        const string Held = "(b.state = 0 and s.claim_fence is not null and b.sequence <= s.claim_last and b.released_fence is distinct from s.claim_fence)";

        // The same, for statements that find b by its sequence: "state + 0" keeps the planner off
        // the unsettled index (whose predicate "state = 0" would match). Its row estimate comes from
        // statistics that can be far off (gathered when every batch was settled, say), and a plan
        // that walks that index instead of looking batches up by key costs a full walk per call.
        const string HeldByKey = "(b.state + 0 = 0 and s.claim_fence is not null and b.sequence <= s.claim_last and b.released_fence is distinct from s.claim_fence)";

        // A batch as BatchRows.Read reads it: a held batch is Claimed under the session's claim; a
        // settled one keeps the claim it was settled under.
        var batchColumns = $"""
            b.sequence, b.session_id, b.payload, b.idempotency_key, b.enqueued_at, b.available_at, b.attempts,
            case when {Held} then 1::smallint else b.state end,
            case when {Held} then s.claim_owner else b.owner end,
            case when {Held} then s.claim_fence else b.fence end,
            case when {Held} then s.claim_expires_at else b.expires_at end,
            b.dead_letter_reason
            """;

        // Enqueue, 1 of 3: lock (or create) every session written to ($1: each once, sorted), in one
        // order so two enqueuers cannot deadlock. DO UPDATE … WHERE false locks an existing row and
        // writes nothing.
        LockSessionsForEnqueue = $"""
            insert into {s}.sessions (session_id)
            select t.session_id from unnest($1::text[]) as t(session_id) order by 1
            on conflict (session_id) do update set session_id = excluded.session_id where false
            """;

        // Enqueue, 2 of 3: sequences are taken now, under the session locks, so a session's order is
        // its commit order. An idempotency key seen before inserts nothing and returns the stored
        // batch (created = false); the payload comes back only for those.
        Enqueue = $"""
            with clock as (select clock_timestamp() as ts),
            input as (
                select t.ord, nextval('{s}.batch_sequence') as sequence, t.session_id, t.payload, t.idempotency_key, t.available_at
                from unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[]) with ordinality as t(session_id, payload, idempotency_key, available_at, ord)
                order by t.ord),
            inserted as (
                insert into {s}.batches (sequence, session_id, payload, idempotency_key, enqueued_at, available_at)
                select i.sequence, i.session_id, i.payload, i.idempotency_key, k.ts, coalesce(i.available_at, k.ts)
                from input i cross join clock k
                order by i.ord
                on conflict (idempotency_key) where idempotency_key is not null do nothing
                returning sequence, enqueued_at, available_at)
            select i.ord, true, n.sequence, null::text, null::bytea, null::text, n.enqueued_at, n.available_at, 0, 0::smallint, null::text, null::bigint, null::timestamptz, null::text
            from input i join inserted n on n.sequence = i.sequence
            union all
            select i.ord, false, {batchColumns}
            from input i
            cross join lateral (select * from {s}.batches x where x.idempotency_key = i.idempotency_key offset 0) b
            cross join lateral (select * from {s}.sessions x where x.session_id = b.session_id offset 0) s
            where i.idempotency_key is not null and not exists (select 1 from inserted n where n.sequence = i.sequence)
            """;

        // Enqueue, 3 of 3: a session ($1, each once) that had nothing left gets its head (the tail
        // never moves it, and a session with nothing left holds no claim).
        SetHeadsAfterEnqueue = $"""
            with heads as materialized (
                select e.row, h.sequence, h.available_at
                from unnest($1::text[]) as x(session_id)
                cross join lateral (select s.ctid as row from {s}.sessions s where s.session_id = x.session_id and s.head_sequence is null offset 0) e
                cross join lateral (
                    select b.sequence, b.available_at from {s}.batches b
                    where b.session_id = x.session_id and b.state = 0 order by b.sequence limit 1) h)
            update {s}.sessions s set head_sequence = h.sequence, ready_at = h.available_at
            from heads h where s.ctid = h.row
            """;

        // Where an enqueue's idempotency key was inserted by a transaction that committed after the
        // enqueue statement's snapshot: read again once it is visible.
        ByIdempotencyKeys = $"""
            select k.key, {batchColumns}
            from unnest($1::text[]) as k(key)
            cross join lateral (select * from {s}.batches x where x.idempotency_key = k.key offset 0) b
            cross join lateral (select * from {s}.sessions x where x.session_id = b.session_id offset 0) s
            """;

        // What every claim does once it knows its sessions (the CTE `fresh`, locked by this
        // transaction and ready, with the claim the lock found): each takes a fresh fence and its
        // leading run of ready batches, at most $3; with $5 (ids) the run must be exactly those, or
        // nothing is claimed. The claim is the session row alone (its batches' rows are not
        // written), but when it supersedes a lapsed claim that still held batches, each of those
        // counts one more attempt (that claim ended without a completion) and is released from it.
        // Fences are taken in head order, the order the claims are returned in. $2 owner, $4 time to live.
        var claimTail = $"""
            candidates as (
                select f.session_id, c.sequence, c.available_at
                from fresh f cross join lateral (
                    select b.sequence, b.available_at from {s}.batches b
                    where b.session_id = f.session_id and b.state = 0 and b.sequence >= f.head order by b.sequence limit $3) c),
            ready_run as (
                select r.session_id, r.sequence from (
                    select c.session_id, c.sequence, bool_and(c.available_at <= k.ts) over (partition by c.session_id order by c.sequence) as ready
                    from candidates c, clock k) r
                where r.ready),
            run as (
                select x.session_id, x.sequence from ready_run x
                where $5::bigint[] is null or (select array_agg(y.sequence order by y.sequence) from ready_run y) = $5::bigint[]),
            fences as (
                select g.session_id, g.last, nextval('{s}.fence_sequence') as fence from (
                    select r.session_id, max(r.sequence) as last from run r group by r.session_id order by min(r.sequence)) g),
            lapsed as (
                update {s}.batches b set attempts = b.attempts + 1
                from (
                    select h.row from fresh f
                    cross join lateral (
                        select x.ctid as row from {s}.batches x
                        where x.session_id = f.session_id and x.state = 0 and x.sequence >= f.head and x.sequence <= f.old_last
                            and x.released_fence is distinct from f.old_fence
                        offset 0) h
                    where f.old_fence is not null and f.session_id in (select session_id from fences)) t
                where b.ctid = t.row
                returning b.sequence),
            claimed as (
                update {s}.sessions s set claim_fence = f.fence, claim_owner = $2, claim_expires_at = k.ts + $4, claim_last = f.last, ready_at = k.ts + $4
                from fences f join fresh r on r.session_id = f.session_id, clock k
                where s.ctid = r.row
                returning s.session_id, s.claim_fence, s.claim_expires_at)
            select c.claim_fence, c.claim_expires_at, b.sequence, b.session_id, b.payload, b.idempotency_key, b.enqueued_at, b.available_at,
                b.attempts + case when exists (select 1 from lapsed l where l.sequence = b.sequence) then 1 else 0 end
            from claimed c join run r on r.session_id = c.session_id
            cross join lateral (select * from {s}.batches x where x.sequence = r.sequence offset 0) b
            order by c.claim_fence, b.sequence
            """;

        // The claim across sessions, one statement: ready sessions, oldest head first, skipping any
        // another transaction holds ($1 at most). Under READ COMMITTED a row changed since the
        // statement's snapshot is re-checked on its newest version before it is locked (ready_at
        // <= now again), so a session another claimer just took is not taken twice. Its batches
        // would then be read from the older snapshot, so such a session is left for the next claim:
        // `fresh` keeps a locked row only when the snapshot sees that very version (a newer version
        // sits at another ctid, which the snapshot cannot see).
        ClaimReady = $"""
            with clock as (select clock_timestamp() as ts),
            picked as (
                select s.session_id, s.ctid as row, s.head_sequence as head, s.claim_fence as old_fence, s.claim_last as old_last from {s}.sessions s
                where s.head_sequence is not null and s.ready_at <= statement_timestamp()
                order by s.head_sequence
                limit $1
                for update skip locked),
            fresh as (
                select p.session_id, p.row, p.head, p.old_fence, p.old_last from picked p
                cross join lateral (select 1 from {s}.sessions x where x.ctid = p.row offset 0) seen),
            {claimTail}
            """;

        // ClaimSession, ClaimByIds, Cancel: wait for the one session's row (a settle holds it briefly).
        LockSession = $"select 1 from {s}.sessions where session_id = $1 for update";

        // ClaimSession and ClaimByIds, after LockSession: the session ($1) if it is ready.
        ClaimSession = $"""
            with clock as (select clock_timestamp() as ts),
            fresh as (
                select s.session_id, s.ctid as row, s.head_sequence as head, s.claim_fence as old_fence, s.claim_last as old_last from {s}.sessions s, clock k
                where s.session_id = $1 and s.ready_at <= k.ts),
            {claimTail}
            """;

        // Settle, 1 of 3: the sessions whose claims have the fences named ($1), locked in one order.
        // A settle changes only batches held under the fence given, that is of a session whose
        // claim has it, so these are all it can touch; a session whose claim changed meanwhile is
        // re-checked on its newest version before it is locked, and passed over.
        LockSessionsOfFences = $"""
            select s.session_id from {s}.sessions s
            where s.claim_fence = any($1)
            order by s.session_id
            for update
            """;

        // Settle, 2 of 3: each batch changes only while held under the fence given (its session's
        // claim has that fence and holds it). A batch named twice is settled by its first
        // settlement only. Returns the input positions (1-based) that settled. Kinds: 0 complete,
        // 1 abandon (released from the claim, pending again after the delay), 2 dead-letter.
        Settle = $"""
            with clock as (select clock_timestamp() as ts),
            input as (
                select * from unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::interval[], $5::text[])
                    with ordinality as t(sequence, fence, kind, delay, reason, ord)),
            firsts as (select distinct on (i.sequence) i.* from input i order by i.sequence, i.ord),
            targets as (
                select f.ord, f.fence, f.kind, f.delay, f.reason, b.row, s.claim_owner, s.claim_expires_at
                from firsts f
                cross join lateral (select x.ctid as row, x.sequence, x.session_id, x.state, x.released_fence from {s}.batches x where x.sequence = f.sequence offset 0) b
                cross join lateral (select * from {s}.sessions x where x.session_id = b.session_id offset 0) s
                where s.claim_fence = f.fence and {Held}),
            settled as (
                update {s}.batches b set
                    state = case f.kind when 0 then 2 when 1 then 0 else 3 end,
                    attempts = b.attempts + case when f.kind = 1 then 1 else 0 end,
                    available_at = case when f.kind = 1 then k.ts + f.delay else b.available_at end,
                    released_fence = case when f.kind = 1 then f.fence else b.released_fence end,
                    owner = case when f.kind = 1 then null else f.claim_owner end,
                    fence = case when f.kind = 1 then null else f.fence end,
                    expires_at = case when f.kind = 1 then null else f.claim_expires_at end,
                    dead_letter_reason = case when f.kind = 2 then f.reason end,
                    settled_at = case when f.kind = 1 then null else k.ts end
                from targets f, clock k
                where b.ctid = f.row
                returning b.sequence)
            select f.ord from firsts f join settled x on x.sequence = f.sequence
            """;

        // Renew, 1 and 2 of 3: the claim with the fence now expires ttl ($2) from now; null when no
        // claim has it (superseded, or it holds nothing any more: a claim is cleared then).
        LockSessionOfFence = $"select 1 from {s}.sessions where claim_fence = $1 for update";
        Renew = $"""
            with clock as (select clock_timestamp() as ts)
            update {s}.sessions s set claim_expires_at = k.ts + $2
            from clock k
            where s.claim_fence = $1
            returning s.claim_expires_at
            """;

        // Cancel, 2 of 3: only a batch no live claim holds; the row goes.
        Cancel = $"""
            delete from {s}.batches b using {s}.sessions s
            where b.sequence = $2 and b.session_id = $1 and s.session_id = $1
                and b.state + 0 = 0 and not ({HeldByKey} and s.claim_expires_at > clock_timestamp())
            returning {batchColumns}
            """;

        List = $"""
            select {batchColumns} from {s}.batches b join {s}.sessions s on s.session_id = $1
            where b.session_id = $1 and b.state = 0
            order by b.sequence
            """;

        ListPending = $"""
            select {batchColumns} from {s}.batches b join {s}.sessions s on s.session_id = $1
            where b.session_id = $1 and b.state = 0 and not ({Held} and s.claim_expires_at > clock_timestamp())
            order by b.sequence
            """;

        SummaryCounts = $"""
            with clock as (select clock_timestamp() as ts),
            counted as (
                select b.state, b.enqueued_at, coalesce({Held} and s.claim_expires_at > k.ts, false) as live
                from clock k, {s}.batches b left join {s}.sessions s on s.session_id = b.session_id and b.state = 0)
            select
                count(*) filter (where r.state = 0 and not r.live),
                count(*) filter (where r.state = 0 and r.live),
                count(*) filter (where r.state = 2),
                count(*) filter (where r.state = 3),
                k.ts - min(r.enqueued_at) filter (where r.state = 0 and not r.live)
            from clock k left join counted r on true
            group by k.ts
            """;

        SummaryLiveClaims = $"""
            select s.session_id, s.claim_owner, s.claim_fence, s.claim_expires_at,
                (select count(*) from {s}.batches b where b.session_id = s.session_id and {Held})::integer
            from {s}.sessions s
            where s.claim_fence is not null and s.claim_expires_at > clock_timestamp()
            order by s.claim_expires_at, s.session_id
            limit $1
            """;

        SummaryDeadLetters = $"""
            select {batchColumns} from {s}.batches b left join {s}.sessions s on false
            where b.state = 3
            order by b.settled_at desc, b.sequence desc
            limit $1
            """;

        RefreshSession = Refresh(s, "s.session_id = $1");
        RefreshSessionsOfFences = Refresh(s, "s.claim_fence = any($1)");
        RefreshSessionOfFence = Refresh(s, "s.claim_fence = $1");
    }

    public string LockSessionsForEnqueue { get; }

    public string Enqueue { get; }

    public string SetHeadsAfterEnqueue { get; }

    public string ByIdempotencyKeys { get; }

    public string ClaimReady { get; }

    public string LockSession { get; }

    public string ClaimSession { get; }

    public string LockSessionsOfFences { get; }

    public string Settle { get; }

    public string LockSessionOfFence { get; }

    public string Renew { get; }

    public string Cancel { get; }

    public string List { get; }

    public string ListPending { get; }

    public string SummaryCounts { get; }

    public string SummaryLiveClaims { get; }

    public string SummaryDeadLetters { get; }

    /// <summary>Refresh (see <see cref="Refresh"/>) of the session named by $1.</summary>
    public string RefreshSession { get; }

    /// <summary>Refresh of the sessions whose claims have the fences $1 (a settle's).</summary>
    public string RefreshSessionsOfFences { get; }

    /// <summary>Refresh of the session whose claim's fence is $1.</summary>
    public string RefreshSessionOfFence { get; }

    /// <summary>
    /// Brings the session rows <paramref name="sessions"/> picks (a condition on <c>s</c>, the
    /// sessions table, its index's to use) up to date after their batches changed: the head, when the session can next be claimed, and
    /// the claim, cleared once it holds nothing (so the fence is fenced out from then on). Nothing
    /// unsettled lies before the old head, so the walks start there, past the settled history.
    /// </summary>
    private static string Refresh(string schema, string sessions) => $"""
        with heads as materialized (
            select s.ctid as row, h.sequence, h.available_at,
                (h.sequence <= s.claim_last and h.released_fence is distinct from s.claim_fence) as head_held,
                exists (
                    select 1 from {schema}.batches c
                    where c.session_id = s.session_id and c.state = 0 and c.sequence >= coalesce(s.head_sequence, 0) and c.sequence <= s.claim_last
                        and c.released_fence is distinct from s.claim_fence) as holding
            from {schema}.sessions s
            left join lateral (
                select b.sequence, b.available_at, b.released_fence from {schema}.batches b
                where b.session_id = s.session_id and b.state = 0 and b.sequence >= coalesce(s.head_sequence, 0) order by b.sequence limit 1) h on true
            where {sessions})
        update {schema}.sessions s set
            head_sequence = h.sequence,
            ready_at = case
                when h.sequence is null then null
                when h.holding then greatest(s.claim_expires_at, case when not h.head_held then h.available_at end)
                else h.available_at end,
            claim_fence = case when h.holding then s.claim_fence end,
            claim_owner = case when h.holding then s.claim_owner end,
            claim_expires_at = case when h.holding then s.claim_expires_at end,
            claim_last = case when h.holding then s.claim_last end
        from heads h
        where s.ctid = h.row
        """;
}
