namespace Pipeline.Storage.Sqlite;

/// <summary>
/// The store's writes, each run by the writer inside its transaction (so every read here sees the
/// rows as they are and nobody else changes them before the commit).
/// </summary>
internal static class SqliteWrites
{
    private const string Unsettled = "state < 2";

    public static EnqueueResult[] Enqueue(SqlCommands sql, IReadOnlyList<QueuedBatchDraft> drafts, DateTimeOffset now)
    {
        var results = new EnqueueResult[drafts.Count];
        for (var i = 0; i < drafts.Count; i++)
        {
            var draft = drafts[i];
            if (draft.IdempotencyKey is { } key)
            {
                using var existing = sql.Read($"SELECT {BatchRows.Columns} FROM batches WHERE idempotency_key = $key", ("$key", key));
                if (existing.Read())
                {
                    results[i] = new EnqueueResult(BatchRows.Read(existing), Created: false);
                    continue;
                }
            }

            var availableAt = draft.AvailableAt ?? now;
            var payload = draft.Payload.ToArray();
            var sequence = (long)sql.Scalar(
                "INSERT INTO batches (session_id, idempotency_key, enqueued_at, available_at) VALUES ($session, $key, $enqueued, $available) RETURNING seq",
                ("$session", draft.SessionId),
                ("$key", draft.IdempotencyKey),
                ("$enqueued", now.UtcTicks),
                ("$available", availableAt.UtcTicks))!;
            sql.Execute("INSERT INTO payloads (seq, payload) VALUES ($seq, $payload)", ("$seq", sequence), ("$payload", payload));

            // A new session's head is this batch; an existing session's head is earlier and stays.
            sql.Execute(
                "INSERT INTO sessions (session_id, head_seq, ready_at) VALUES ($session, $seq, $ready) ON CONFLICT (session_id) DO NOTHING",
                ("$session", draft.SessionId),
                ("$seq", sequence),
                ("$ready", availableAt.UtcTicks));

            results[i] = new EnqueueResult(
                new QueuedBatch
                {
                    BatchId = BatchRows.IdOf(sequence),
                    SessionId = draft.SessionId,
                    Sequence = sequence,
                    Payload = payload,
                    IdempotencyKey = draft.IdempotencyKey,
                    EnqueuedAt = BatchRows.Time(now.UtcTicks),
                    AvailableAt = BatchRows.Time(availableAt.UtcTicks),
                    Attempts = 0,
                    State = QueuedBatchState.Pending,
                },
                Created: true);
        }

        return results;
    }

    public static QueuedWorkClaim? ClaimSession(SqlCommands sql, string sessionId, LeaseRequest lease, int maxBatches, DateTimeOffset now)
    {
        // Ready and held in one statement, as the cross-session claim does it.
        var expiresAt = BatchRows.Time((now + lease.TimeToLive).UtcTicks);
        if (sql.Scalar(
            "UPDATE sessions SET ready_at = $expires WHERE session_id = $session AND ready_at <= $now RETURNING head_seq",
            ("$expires", expiresAt.UtcTicks),
            ("$session", sessionId),
            ("$now", now.UtcTicks)) is not long head)
        {
            return null;
        }

        var fence = NextFences(sql, 1);
        var batches = ClaimFromHead(sql, sessionId, head, maxBatches, lease.Owner, fence, expiresAt, now);
        if (batches.Count == 0)
        {
            Reindex(sql, [sessionId]);
            return null;
        }

        return new QueuedWorkClaim { SessionId = sessionId, Owner = lease.Owner, Fence = fence, ExpiresAt = expiresAt, Batches = batches };
    }

    public static List<QueuedWorkClaim> ClaimReady(SqlCommands sql, LeaseRequest lease, int maxSessions, int maxBatchesPerSession, DateTimeOffset now)
    {
        // Picks the ready sessions, oldest head first, and marks them held in one statement: every claim of
        // the call has the same expiry, which is the session's new ready time (its other claims all lapsed).
        var expiresAt = BatchRows.Time((now + lease.TimeToLive).UtcTicks);
        var heads = new List<(long Head, string SessionId)>(Math.Min(maxSessions, 1024));
        using (var picked = sql.Read(
            "UPDATE sessions SET ready_at = $expires WHERE head_seq IN (SELECT head_seq FROM sessions WHERE ready_at <= $now ORDER BY head_seq LIMIT $max) RETURNING head_seq, session_id",
            ("$expires", expiresAt.UtcTicks),
            ("$now", now.UtcTicks),
            ("$max", maxSessions)))
        {
            while (picked.Read())
            {
                heads.Add((picked.GetInt64(0), picked.GetString(1)));
            }
        }

        var claims = new List<QueuedWorkClaim>(heads.Count);
        if (heads.Count == 0)
        {
            return claims;
        }

        // RETURNING promises no order; fences go out in head order, from one counter update.
        heads.Sort((a, b) => a.Head.CompareTo(b.Head));
        var fence = NextFences(sql, heads.Count);
        if (maxBatchesPerSession == 1)
        {
            return ClaimHeads(sql, heads, lease.Owner, fence, expiresAt);
        }

        foreach (var (head, sessionId) in heads)
        {
            var batches = ClaimFromHead(sql, sessionId, head, maxBatchesPerSession, lease.Owner, fence, expiresAt, now);
            if (batches.Count == 0)
            {
                // Not reached while the sessions table is right; if it ever is not, it is put right rather than left held.
                Reindex(sql, [sessionId]);
                continue;
            }

            claims.Add(new QueuedWorkClaim { SessionId = sessionId, Owner = lease.Owner, Fence = fence++, ExpiresAt = expiresAt, Batches = batches });
        }

        return claims;
    }

    public static QueuedWorkClaim? ClaimByIds(SqlCommands sql, string sessionId, IReadOnlyList<string> batchIds, LeaseRequest lease, DateTimeOffset now)
    {
        if (!IsReady(sql, sessionId, now))
        {
            return null;
        }

        var run = ReadyRun(sql, sessionId, batchIds.Count, now);
        if (run.Count != batchIds.Count)
        {
            return null;
        }

        for (var i = 0; i < run.Count; i++)
        {
            if (!string.Equals(run[i].BatchId, batchIds[i], StringComparison.Ordinal))
            {
                return null;
            }
        }

        return Claim(sql, sessionId, run, lease, NextFences(sql, 1), now);
    }

    public static DateTimeOffset? Renew(SqlCommands sql, long fence, TimeSpan timeToLive, DateTimeOffset now)
    {
        var sessionId = (string?)sql.Scalar("SELECT session_id FROM batches WHERE fence = $fence AND state = 1 LIMIT 1", ("$fence", fence));
        if (sessionId is null)
        {
            return null;
        }

        // A successor that took part of a lapsed claim holds the session now: two live claims of one session never.
        var successor = sql.Scalar(
            "SELECT 1 FROM batches WHERE session_id = $session AND state = 1 AND expires_at > $now AND fence <> $fence LIMIT 1",
            ("$session", sessionId),
            ("$now", now.UtcTicks),
            ("$fence", fence));
        if (successor is not null)
        {
            return null;
        }

        var expiresAt = now + timeToLive;
        sql.Execute("UPDATE batches SET expires_at = $expires WHERE fence = $fence AND state = 1", ("$expires", expiresAt.UtcTicks), ("$fence", fence));
        Reindex(sql, [sessionId]);
        return BatchRows.Time(expiresAt.UtcTicks);
    }

    public static SettleStatus[] Settle(SqlCommands sql, IReadOnlyList<BatchSettlement> settlements, DateTimeOffset now)
    {
        var results = new SettleStatus[settlements.Count];
        var touched = new HashSet<string>(StringComparer.Ordinal);
        var sequences = new Dictionary<long, int>(settlements.Count);
        var others = new List<int>();
        var completions = new JsonArray();
        for (var i = 0; i < settlements.Count; i++)
        {
            var settlement = settlements[i];
            if (!BatchRows.TryParseId(settlement.BatchId, out var sequence))
            {
                results[i] = SettleStatus.FencedOut;
                continue;
            }

            if (!sequences.TryAdd(sequence, i))
            {
                // One batch twice in a call: each in call order, the later one fenced out by the earlier.
                return SettleOneByOne(sql, settlements, now);
            }

            if (settlement.Kind == SettleKind.Complete)
            {
                completions.AddPair(sequence, settlement.Fence);
                results[i] = SettleStatus.FencedOut; // until the statement returns its row
            }
            else
            {
                others.Add(i);
            }
        }

        long completed = 0, deadLettered = 0;
        if (completions.Count > 0)
        {
            // Completions, the common settle, in one statement: each row fence-checked, an unmatched one left as it is.
            using var settled = sql.Read(
                """
                UPDATE batches SET state = 2, settled_at = $now
                FROM (SELECT value ->> 0 AS s_seq, value ->> 1 AS s_fence FROM json_each($items))
                WHERE seq = s_seq AND state = 1 AND fence = s_fence
                RETURNING seq, session_id
                """,
                ("$now", now.UtcTicks),
                ("$items", completions.ToString()));
            while (settled.Read())
            {
                results[sequences[settled.GetInt64(0)]] = SettleStatus.Settled;
                touched.Add(settled.GetString(1));
                completed++;
            }
        }

        foreach (var i in others)
        {
            var settled = SettleOne(sql, settlements[i], now);
            results[i] = settled is null ? SettleStatus.FencedOut : SettleStatus.Settled;
            if (settled is not null)
            {
                touched.Add(settled);
                deadLettered += settlements[i].Kind == SettleKind.DeadLetter ? 1 : 0;
            }
        }

        Reindex(sql, touched);
        AddToCounter(sql, "completed", completed);
        AddToCounter(sql, "dead_lettered", deadLettered);
        return results;
    }

    private static SettleStatus[] SettleOneByOne(SqlCommands sql, IReadOnlyList<BatchSettlement> settlements, DateTimeOffset now)
    {
        var results = new SettleStatus[settlements.Count];
        var touched = new HashSet<string>(StringComparer.Ordinal);
        long completed = 0, deadLettered = 0;
        for (var i = 0; i < settlements.Count; i++)
        {
            var sessionId = SettleOne(sql, settlements[i], now);
            if (sessionId is null)
            {
                results[i] = SettleStatus.FencedOut;
                continue;
            }

            results[i] = SettleStatus.Settled;
            touched.Add(sessionId);
            completed += settlements[i].Kind == SettleKind.Complete ? 1 : 0;
            deadLettered += settlements[i].Kind == SettleKind.DeadLetter ? 1 : 0;
        }

        Reindex(sql, touched);
        AddToCounter(sql, "completed", completed);
        AddToCounter(sql, "dead_lettered", deadLettered);
        return results;
    }

    // One settle, the fence check and the change in one statement: a row held under another fence
    // (or settled) is not touched. The session it settled in, or null when fenced out.
    private static string? SettleOne(SqlCommands sql, BatchSettlement settlement, DateTimeOffset now)
    {
        if (!BatchRows.TryParseId(settlement.BatchId, out var sequence))
        {
            return null;
        }

        return settlement.Kind switch
        {
            SettleKind.Complete => (string?)sql.Scalar(
                "UPDATE batches SET state = 2, settled_at = $now WHERE seq = $seq AND state = 1 AND fence = $fence RETURNING session_id",
                ("$now", now.UtcTicks),
                ("$seq", sequence),
                ("$fence", settlement.Fence)),
            SettleKind.Abandon => (string?)sql.Scalar(
                "UPDATE batches SET state = 0, attempts = attempts + 1, available_at = $available, owner = NULL, fence = NULL, expires_at = NULL WHERE seq = $seq AND state = 1 AND fence = $fence RETURNING session_id",
                ("$available", (now + settlement.Delay).UtcTicks),
                ("$seq", sequence),
                ("$fence", settlement.Fence)),
            SettleKind.DeadLetter => (string?)sql.Scalar(
                "UPDATE batches SET state = 3, settled_at = $now, dead_letter_reason = $reason WHERE seq = $seq AND state = 1 AND fence = $fence RETURNING session_id",
                ("$now", now.UtcTicks),
                ("$reason", settlement.Reason),
                ("$seq", sequence),
                ("$fence", settlement.Fence)),
            _ => throw new ArgumentOutOfRangeException(nameof(settlement), settlement.Kind, "Unknown settle kind."),
        };
    }

    public static QueuedBatch? Cancel(SqlCommands sql, string sessionId, string batchId, DateTimeOffset now)
    {
        if (!BatchRows.TryParseId(batchId, out var sequence))
        {
            return null;
        }

        QueuedBatch batch;
        using (var row = sql.Read($"SELECT {BatchRows.Columns} FROM batches WHERE seq = $seq AND session_id = $session AND {Unsettled}", ("$seq", sequence), ("$session", sessionId)))
        {
            if (!row.Read())
            {
                return null;
            }

            batch = BatchRows.Read(row);
        }

        if (batch.State == QueuedBatchState.Claimed && batch.Lease!.ExpiresAt > now)
        {
            return null;
        }

        sql.Execute("DELETE FROM batches WHERE seq = $seq", ("$seq", sequence));
        sql.Execute("DELETE FROM payloads WHERE seq = $seq", ("$seq", sequence));
        Reindex(sql, [sessionId]);
        return batch;
    }

    // Claimable now: the session's row says its head is available and no claimed batch of it is live.
    private static bool IsReady(SqlCommands sql, string sessionId, DateTimeOffset now) =>
        sql.Scalar("SELECT 1 FROM sessions WHERE session_id = $session AND ready_at <= $now", ("$session", sessionId), ("$now", now.UtcTicks)) is not null;

    // The available batches from the head on, in order, up to the first that is not: never skipping one.
    private static List<QueuedBatch> ReadyRun(SqlCommands sql, string sessionId, int max, DateTimeOffset now)
    {
        var run = new List<QueuedBatch>(Math.Min(max, 64));
        using var rows = sql.Read(
            $"SELECT {BatchRows.Columns} FROM batches WHERE session_id = $session AND {Unsettled} ORDER BY seq LIMIT $max",
            ("$session", sessionId),
            ("$max", max));
        while (rows.Read())
        {
            var batch = BatchRows.Read(rows);
            if (batch.AvailableAt > now)
            {
                break;
            }

            run.Add(batch);
        }

        return run;
    }

    // Claims a ready session's run in one statement: its head alone by rowid, or up to max from the head,
    // stopping before the first batch not yet available (never skipping it).
    private static List<QueuedBatch> ClaimFromHead(SqlCommands sql, string sessionId, long head, int max, string owner, long fence, DateTimeOffset expiresAt, DateTimeOffset now)
    {
        // A batch still marked claimed here had its lease lapse: that claim ended without a completion, one more attempt.
        const string Set = "state = 1, attempts = attempts + (state = 1), owner = $owner, fence = $fence, expires_at = $expires";
        using var claimed = max == 1
            ? sql.Read(
                $"UPDATE batches SET {Set} WHERE seq = $head AND {Unsettled} RETURNING {BatchRows.Columns}",
                ("$owner", owner),
                ("$fence", fence),
                ("$expires", expiresAt.UtcTicks),
                ("$head", head))
            : sql.Read(
                $"""
                WITH run AS (SELECT seq, available_at FROM batches WHERE session_id = $session AND {Unsettled} ORDER BY seq LIMIT $max)
                UPDATE batches SET {Set}
                WHERE seq IN (SELECT seq FROM run WHERE seq < (SELECT coalesce(min(seq), 9223372036854775807) FROM run WHERE available_at > $now))
                RETURNING {BatchRows.Columns}
                """,
                ("$owner", owner),
                ("$fence", fence),
                ("$expires", expiresAt.UtcTicks),
                ("$session", sessionId),
                ("$max", max),
                ("$now", now.UtcTicks));
        var batches = BatchRows.ReadAll(claimed);

        // RETURNING promises no order.
        batches.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        return batches;
    }

    private static QueuedWorkClaim Claim(SqlCommands sql, string sessionId, List<QueuedBatch> run, LeaseRequest lease, long fence, DateTimeOffset now)
    {
        var expiresAt = BatchRows.Time((now + lease.TimeToLive).UtcTicks);

        // The run is consecutive among the session's unsettled batches, so its range names exactly it.
        sql.Execute(
            // A batch still marked claimed here had its lease lapse: that claim ended without a completion, one more attempt.
            $"UPDATE batches SET state = 1, attempts = attempts + (state = 1), owner = $owner, fence = $fence, expires_at = $expires WHERE session_id = $session AND {Unsettled} AND seq BETWEEN $first AND $last",
            ("$owner", lease.Owner),
            ("$fence", fence),
            ("$expires", expiresAt.UtcTicks),
            ("$session", sessionId),
            ("$first", run[0].Sequence),
            ("$last", run[^1].Sequence));

        // Every other claimed batch of the session has lapsed (the session was ready), so this lease is the latest.
        sql.Execute("UPDATE sessions SET ready_at = $expires WHERE session_id = $session", ("$expires", expiresAt.UtcTicks), ("$session", sessionId));

        var leaseHeld = new ClaimLease(lease.Owner, fence, expiresAt);
        var batches = new QueuedBatch[run.Count];
        for (var i = 0; i < run.Count; i++)
        {
            var lapsed = run[i].State == QueuedBatchState.Claimed;
            batches[i] = run[i] with { State = QueuedBatchState.Claimed, Lease = leaseHeld, Attempts = run[i].Attempts + (lapsed ? 1 : 0) };
        }

        return new QueuedWorkClaim { SessionId = sessionId, Owner = lease.Owner, Fence = fence, ExpiresAt = expiresAt, Batches = batches };
    }

    // Takes count fences from the counter; the first of them.
    private static long NextFences(SqlCommands sql, int count) =>
        (long)sql.Scalar("UPDATE counters SET value = value + $count WHERE name = 'fence' RETURNING value", ("$count", count))! - count + 1;

    private static void AddToCounter(SqlCommands sql, string name, long by)
    {
        if (by != 0)
        {
            sql.Execute("UPDATE counters SET value = value + $by WHERE name = $name", ("$by", by), ("$name", name));
        }
    }

    // Claims the head of each picked session in one statement (one batch per session): the claims in
    // head order, fences counting up from the first as the heads do.
    private static List<QueuedWorkClaim> ClaimHeads(SqlCommands sql, List<(long Head, string SessionId)> heads, string owner, long fence, DateTimeOffset expiresAt)
    {
        var items = new JsonArray();
        foreach (var (head, _) in heads)
        {
            items.Add(head);
        }

        var claimed = new Dictionary<long, QueuedBatch>(heads.Count);
        using (var rows = sql.Read(
            // A batch still marked claimed here had its lease lapse: that claim ended without a completion, one more attempt.
            $"""
            UPDATE batches SET state = 1, attempts = attempts + (state = 1), owner = $owner, fence = $fence + h_index, expires_at = $expires
            FROM (SELECT key AS h_index, value AS h_seq FROM json_each($heads))
            WHERE seq = h_seq AND {Unsettled}
            RETURNING {BatchRows.Columns}
            """,
            ("$owner", owner),
            ("$fence", fence),
            ("$expires", expiresAt.UtcTicks),
            ("$heads", items.ToString())))
        {
            while (rows.Read())
            {
                var batch = BatchRows.Read(rows);
                claimed.Add(batch.Sequence, batch);
            }
        }

        var claims = new List<QueuedWorkClaim>(claimed.Count);
        List<string>? lost = null;
        for (var i = 0; i < heads.Count; i++)
        {
            if (claimed.TryGetValue(heads[i].Head, out var batch))
            {
                claims.Add(new QueuedWorkClaim { SessionId = heads[i].SessionId, Owner = owner, Fence = fence + i, ExpiresAt = expiresAt, Batches = [batch] });
            }
            else
            {
                // Not reached while the sessions table is right; if it ever is not, it is put right rather than left held.
                (lost ??= []).Add(heads[i].SessionId);
            }
        }

        if (lost is not null)
        {
            Reindex(sql, lost);
        }

        return claims;
    }

    /// <summary>
    /// Sets each session's head and ready time from its batches (the later of the head's available
    /// time and every claimed batch's lease expiry), or drops it once nothing of it is unsettled: in
    /// two statements however many sessions.
    /// </summary>
    private static void Reindex(SqlCommands sql, IReadOnlyCollection<string> sessionIds)
    {
        if (sessionIds.Count == 0)
        {
            return;
        }

        var items = new JsonArray();
        foreach (var sessionId in sessionIds)
        {
            items.Add(sessionId);
        }

        var json = items.ToString();
        sql.Execute(
            $"DELETE FROM sessions WHERE session_id IN (SELECT value FROM json_each($sessions)) AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.session_id = sessions.session_id AND {Unsettled})",
            ("$sessions", json));

        // WHERE true: an INSERT ... SELECT with a join needs it before its upsert clause.
        sql.Execute(
            $"""
            INSERT INTO sessions (session_id, head_seq, ready_at)
            SELECT h.session_id, b.seq, max(b.available_at, coalesce((SELECT max(c.expires_at) FROM batches c WHERE c.session_id = h.session_id AND c.state = 1), b.available_at))
            FROM (SELECT value AS session_id, (SELECT seq FROM batches WHERE session_id = value AND {Unsettled} ORDER BY seq LIMIT 1) AS head FROM json_each($sessions)) h
            JOIN batches b ON b.seq = h.head
            WHERE true
            ON CONFLICT (session_id) DO UPDATE SET head_seq = excluded.head_seq, ready_at = excluded.ready_at
            """,
            ("$sessions", json));
    }
}
