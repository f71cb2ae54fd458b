namespace Pipeline.Storage.Postgres;

/// <summary>
/// The store's statements for one schema. Every statement that changes a session's batches runs
/// after the session's row is locked (by an earlier statement of the same transaction), and
/// <see cref="Refresh"/> then brings the session row up to date, so a claimer that holds the row
/// sees the session as it is. Times come from the database (<c>clock_timestamp()</c>, read once
/// per statement in the <c>clock</c> CTE), never from the caller.
/// </summary>
internal sealed class PostgresStoreSql
{
    /// <summary>The columns <see cref="BatchRows.Read"/> expects, in its order, of the batches table aliased <c>b</c>.</summary>
    public const string BatchColumns = "b.sequence, b.session_id, b.payload, b.idempotency_key, b.enqueued_at, b.available_at, b.attempts, b.state, b.owner, b.fence, b.expires_at, b.dead_letter_reason";

    public PostgresStoreSql(string schema)
    {
        var s = schema;

        // Enqueue, 1 of 3: lock (or create) every session written to, in one order so two enqueuers
        // cannot deadlock. DO UPDATE … WHERE false locks the existing row and writes nothing.
        LockSessionsForEnqueue = $"""
            insert into {s}.sessions (session_id)
            select distinct t.session_id from unnest($1::text[]) as t(session_id) order by 1
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
            select i.ord, false, {BatchColumns}
            from input i join {s}.batches b on b.idempotency_key = i.idempotency_key
            where i.idempotency_key is not null and not exists (select 1 from inserted n where n.sequence = i.sequence)
            """;

        // Enqueue, 3 of 3: a session that had nothing left gets its head (the tail never moves it).
        SetHeadsAfterEnqueue = $"""
            with heads as (
                select x.session_id, h.sequence, h.available_at
                from (select distinct t.session_id from unnest($1::text[]) as t(session_id)) x
                join {s}.sessions s on s.session_id = x.session_id and s.head_sequence is null
                cross join lateral (
                    select b.sequence, b.available_at from {s}.batches b
                    where b.session_id = x.session_id and b.state < 2 order by b.sequence limit 1) h)
            update {s}.sessions s set head_sequence = h.sequence, ready_at = h.available_at
            from heads h where s.session_id = h.session_id
            """;

        // Where an enqueue's idempotency key was inserted by a transaction that committed after the
        // enqueue statement's snapshot: read again once it is visible.
        ByIdempotencyKeys = $"select k.key, {BatchColumns} from unnest($1::text[]) as k(key) join {s}.batches b on b.idempotency_key = k.key";

        // The claim across sessions, 1 of 2: ready sessions, oldest head first, skipping any another
        // transaction holds. Under READ COMMITTED a row changed since the snapshot is re-checked on
        // its newest version before it is locked (ready_at <= now again), so a session another
        // claimer just took (ready_at moved to its lease's expiry) is not taken twice.
        LockReadySessions = $"""
            select s.session_id from {s}.sessions s
            where s.head_sequence is not null and s.ready_at <= statement_timestamp()
            order by s.head_sequence
            limit $1
            for update skip locked
            """;

        // ClaimSession, ClaimByIds, Cancel: wait for the one session's row (a settle holds it briefly).
        LockSession = $"select 1 from {s}.sessions where session_id = $1 for update";

        // Claim, 2 of 2, over sessions this transaction has locked ($1): each session still ready
        // (checked again, now under the lock) gets a fresh fence and its leading run of ready
        // batches, at most $4. Batches still held under the session's lapsed claim but not in the run
        // go back to pending (fenced out: every held batch belongs to the current claim). With $5 (ids)
        // the run must be exactly those batches, or nothing is claimed.
        Claim = $"""
            with clock as (select clock_timestamp() as ts),
            locked as (
                select s.session_id from {s}.sessions s, clock k
                where s.session_id = any($1) and s.ready_at <= k.ts),
            candidates as (
                select l.session_id, c.sequence, c.state, c.available_at, c.expires_at
                from locked l cross join lateral (
                    select b.sequence, b.state, b.available_at, b.expires_at from {s}.batches b
                    where b.session_id = l.session_id and b.state < 2 order by b.sequence limit $4) c),
            ready_run as (
                select r.session_id, r.sequence from (
                    select c.session_id, c.sequence,
                        bool_and((c.state = 0 and c.available_at <= k.ts) or (c.state = 1 and c.expires_at <= k.ts))
                            over (partition by c.session_id order by c.sequence) as ready
                    from candidates c, clock k) r
                where r.ready),
            run as (
                select l.session_id, l.sequence from ready_run l
                where $5::bigint[] is null or (select array_agg(x.sequence order by x.sequence) from ready_run x) = $5::bigint[]),
            fences as (
                select f.session_id, nextval('{s}.fence_sequence') as fence from (select distinct session_id from run) f),
            claimed as (
                update {s}.batches b set state = 1, owner = $2, fence = f.fence, expires_at = k.ts + $3
                from run r join fences f on f.session_id = r.session_id, clock k
                where b.sequence = r.sequence
                returning {BatchColumns}),
            released as (
                update {s}.batches b set state = 0
                from fences f
                where b.session_id = f.session_id and b.state = 1 and not exists (select 1 from run r where r.sequence = b.sequence)
                returning b.sequence),
            sessions_claimed as (
                update {s}.sessions s set claim_fence = f.fence, claim_owner = $2, claim_expires_at = k.ts + $3, ready_at = k.ts + $3
                from fences f, clock k
                where s.session_id = f.session_id
                returning s.session_id)
            select {BatchColumns.Replace("b.", "c.", StringComparison.Ordinal)} from claimed c
            order by c.fence, c.sequence
            """;

        // Settle, 1 of 3: the sessions of the batches settled, locked in one order.
        LockSessionsOfBatches = $"""
            select s.session_id from {s}.sessions s
            where s.session_id in (select b.session_id from {s}.batches b where b.sequence = any($1))
            order by s.session_id
            for update
            """;

        // Settle, 2 of 3: each batch changes only while held (state 1) under the fence given. A
        // batch named twice is settled by its first settlement only. Returns the input positions
        // (1-based) that settled. Kinds: 0 complete, 1 abandon, 2 dead-letter.
        Settle = $"""
            with clock as (select clock_timestamp() as ts),
            input as (
                select * from unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::interval[], $5::text[])
                    with ordinality as t(sequence, fence, kind, delay, reason, ord)),
            firsts as (select distinct on (i.sequence) i.* from input i order by i.sequence, i.ord),
            settled as (
                update {s}.batches b set
                    state = case f.kind when 0 then 2 when 1 then 0 else 3 end,
                    attempts = b.attempts + case when f.kind = 1 then 1 else 0 end,
                    available_at = case when f.kind = 1 then k.ts + f.delay else b.available_at end,
                    owner = case when f.kind = 1 then null else b.owner end,
                    fence = case when f.kind = 1 then null else b.fence end,
                    expires_at = case when f.kind = 1 then null else b.expires_at end,
                    dead_letter_reason = case when f.kind = 2 then f.reason end,
                    settled_at = case when f.kind = 1 then null else k.ts end
                from firsts f, clock k
                where b.sequence = f.sequence and b.state = 1 and b.fence = f.fence
                returning b.sequence)
            select f.ord from firsts f join settled x on x.sequence = f.sequence
            """;

        // Renew, 2 of 3 (1 is LockSessionOfFence): every batch still held under the fence, and the
        // session's claim, now expire ttl from now. Null when nothing is held under it.
        LockSessionOfFence = $"select 1 from {s}.sessions where claim_fence = $1 for update";
        Renew = $"""
            with clock as (select clock_timestamp() as ts),
            target as (select s.session_id from {s}.sessions s where s.claim_fence = $1),
            renewed as (
                update {s}.batches b set expires_at = k.ts + $2
                from target t, clock k
                where b.session_id = t.session_id and b.state = 1 and b.fence = $1
                returning b.expires_at),
            claim as (
                update {s}.sessions s set claim_expires_at = k.ts + $2
                from target t, clock k
                where s.session_id = t.session_id and exists (select 1 from renewed)
                returning s.session_id)
            select max(expires_at) from renewed
            """;

        // Cancel, 2 of 3: only a batch no live claim holds; the row goes.
        Cancel = $"""
            delete from {s}.batches b
            where b.session_id = $1 and b.sequence = $2 and (b.state = 0 or (b.state = 1 and b.expires_at <= clock_timestamp()))
            returning {BatchColumns}
            """;

        List = $"select {BatchColumns} from {s}.batches b where b.session_id = $1 and b.state < 2 order by b.sequence";

        ListPending = $"""
            select {BatchColumns} from {s}.batches b
            where b.session_id = $1 and b.state < 2 and (b.state = 0 or b.expires_at <= clock_timestamp())
            order by b.sequence
            """;

        SummaryCounts = $"""
            with clock as (select clock_timestamp() as ts)
            select
                count(*) filter (where b.state = 0 or (b.state = 1 and b.expires_at <= k.ts)),
                count(*) filter (where b.state = 1 and b.expires_at > k.ts),
                count(*) filter (where b.state = 2),
                count(*) filter (where b.state = 3),
                k.ts - min(b.enqueued_at) filter (where b.state = 0 or (b.state = 1 and b.expires_at <= k.ts))
            from clock k left join {s}.batches b on true
            group by k.ts
            """;

        SummaryLiveClaims = $"""
            select s.session_id, s.claim_owner, s.claim_fence, s.claim_expires_at,
                (select count(*) from {s}.batches b where b.session_id = s.session_id and b.state = 1 and b.fence = s.claim_fence)::integer
            from {s}.sessions s
            where s.claim_expires_at > clock_timestamp()
            order by s.claim_expires_at, s.session_id
            limit $1
            """;

        SummaryDeadLetters = $"select {BatchColumns} from {s}.batches b where b.state = 3 order by b.settled_at desc, b.sequence desc limit $1";

        RefreshSession = Refresh(s, "array[$1::text]");
        RefreshSessionsOfBatches = Refresh(s, $"(select array_agg(b.session_id) from {s}.batches b where b.sequence = any($1))");
        RefreshSessionOfFence = Refresh(s, $"(select array_agg(x.session_id) from {s}.sessions x where x.claim_fence = $1)");
    }

    /// <summary>Refresh (see <see cref="Refresh"/>) of the session named by $1.</summary>
    public string RefreshSession { get; }

    /// <summary>Refresh of the sessions of the batches whose sequences are $1.</summary>
    public string RefreshSessionsOfBatches { get; }

    /// <summary>Refresh of the session whose claim's fence is $1.</summary>
    public string RefreshSessionOfFence { get; }

    public string LockSessionsForEnqueue { get; }

    public string Enqueue { get; }

    public string SetHeadsAfterEnqueue { get; }

    public string ByIdempotencyKeys { get; }

    public string LockReadySessions { get; }

    public string LockSession { get; }

    public string Claim { get; }

    public string LockSessionsOfBatches { get; }

    public string Settle { get; }

    public string LockSessionOfFence { get; }

    public string Renew { get; }

    public string Cancel { get; }

    public string List { get; }

    public string ListPending { get; }

    public string SummaryCounts { get; }

    public string SummaryLiveClaims { get; }

    public string SummaryDeadLetters { get; }

    /// <summary>
    /// Brings the session rows named by <paramref name="sessions"/> (a SQL expression of type text[])
    /// up to date after their batches changed: head, when they can next be claimed, and the claim
    /// cleared once it holds nothing.
    /// </summary>
    private static string Refresh(string schema, string sessions) => $"""
        with heads as (
            select x.session_id, h.sequence, h.state, h.available_at,
                exists (select 1 from {schema}.batches c where c.session_id = x.session_id and c.state = 1) as holding
            from (select distinct t.session_id from unnest({sessions}) as t(session_id)) x
            left join lateral (
                select b.sequence, b.state, b.available_at from {schema}.batches b
                where b.session_id = x.session_id and b.state < 2 order by b.sequence limit 1) h on true)
        update {schema}.sessions s set
            head_sequence = h.sequence,
            ready_at = case
                when h.sequence is null then null
                when h.holding then greatest(s.claim_expires_at, case when h.state = 0 then h.available_at end)
                else h.available_at end,
            claim_fence = case when h.holding then s.claim_fence end,
            claim_owner = case when h.holding then s.claim_owner end,
            claim_expires_at = case when h.holding then s.claim_expires_at end
        from heads h
        where s.session_id = h.session_id
        """;
}
