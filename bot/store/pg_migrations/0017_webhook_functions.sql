-- The webhook worker's claim and its batch of attempts, each one call of a
-- function whose statements find their rows by key (the shape of 0016's
-- wagate_finish_media); bot/store/postgres/deliveries.py calls them.
-- As single statements over the batch's arrays they were planned again on most
-- calls (0.2-1.3 ms a plan): a custom plan, knowing the arrays' lengths and the
-- limit, is estimated cheaper than the generic one, so PostgreSQL rarely keeps
-- the generic; and the generic plan a claim did keep, made while the table was
-- small, joined its rows back as a scan of the whole table (11 ms a claim
-- behind 20,000 deliveries). Here each statement has one plan worth having (a
-- seek by key, or the group and due indexes as bot/store/postgres/groups.py
-- writes them), kept from the first call (plan_cache_mode) and made with seq
-- scans off: a plan made on an empty table is kept as it grows (until the
-- next ANALYZE), and would otherwise scan it. Both settings hold for these
-- functions' own statements only.

-- A claim reads the disabled endpoints, fewer than the endpoints by far.
CREATE INDEX webhook_endpoints_disabled ON webhook_endpoints (subscriber_id, endpoint_key)
    WHERE disabled_at IS NOT NULL;

-- Up to p_limit deliveries due by p_due, oldest first, leased to p_holder until
-- p_until, skipping the busy endpoints (p_busy_subs and p_busy_keys pair up)
-- and rows another process is claiming; due rows of a disabled endpoint are
-- failed (last_error: p_disabled_prefix and the reason, or p_disabled_default)
-- instead. Answers the rows claimed as they were before the claim, in due order.
CREATE FUNCTION wagate_claim_deliveries(p_due double precision, p_busy_subs text[],
                                        p_busy_keys text[], p_limit integer,
                                        p_now double precision, p_until double precision,
                                        p_holder text, p_disabled_prefix text,
                                        p_disabled_default text)
RETURNS SETOF webhook_deliveries
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    sub text;
    key text;
    busy boolean;
    heads text[] := '{}';
    head_ats double precision[] := '{}';
    picked text[];
    d webhook_deliveries%ROWTYPE;
    claimed bigint[] := '{}';
    due refcursor;
    reason text;
    disabled_subs text[];
    disabled_keys text[];
    disabled_reasons text[];
BEGIN
    IF cardinality(p_busy_subs) > 0 THEN
        -- Each endpoint with pending rows, one seek of the group index past
        -- the last (a loose index scan); each one not busy gives its earliest
        -- due rows from the same index. A busy one's backlog is never walked.
        SELECT w.subscriber_id, w.endpoint_key INTO sub, key FROM webhook_deliveries w
        WHERE (w.status = 'pending') IS TRUE
        ORDER BY w.subscriber_id, w.endpoint_key, w.next_attempt_at LIMIT 1;
        WHILE FOUND LOOP
            busy := false;
            FOR i IN 1 .. cardinality(p_busy_subs) LOOP
                busy := busy OR (p_busy_subs[i] = sub AND p_busy_keys[i] = key);
            END LOOP;
            IF NOT busy THEN
                SELECT heads || array_agg(h.id), head_ats || array_agg(h.next_attempt_at)
                INTO heads, head_ats
                FROM (SELECT w.id, w.next_attempt_at FROM webhook_deliveries w
                      WHERE (w.status = 'pending') IS TRUE AND w.subscriber_id = sub
                          AND w.endpoint_key = key AND w.next_attempt_at <= p_due
                      ORDER BY w.subscriber_id, w.endpoint_key, w.next_attempt_at
                      LIMIT p_limit) AS h;
            END IF;
            SELECT w.subscriber_id, w.endpoint_key INTO sub, key FROM webhook_deliveries w
            WHERE (w.status = 'pending') IS TRUE AND (w.subscriber_id, w.endpoint_key) > (sub, key)
            ORDER BY w.subscriber_id, w.endpoint_key, w.next_attempt_at LIMIT 1;
        END LOOP;
        picked := ARRAY(SELECT h.id FROM unnest(heads, head_ats) AS h (id, at)
                        ORDER BY h.at LIMIT p_limit);
    END IF;
    -- The rows picked (or, with no endpoint busy, the earliest due), locked and
    -- checked again; the rows picked are found by id alone (`IS TRUE`: no
    -- partial index matches, so none that walks the busy endpoints' rows).
    -- The disabled endpoints (few, if any: a partial index of their own).
    SELECT COALESCE(array_agg(e.subscriber_id), '{}'), COALESCE(array_agg(e.endpoint_key), '{}'),
           COALESCE(array_agg(COALESCE(NULLIF(e.disabled_reason, ''), p_disabled_default)), '{}')
    INTO disabled_subs, disabled_keys, disabled_reasons
    FROM webhook_endpoints e WHERE e.disabled_at IS NOT NULL;
    IF picked IS NULL THEN
        OPEN due FOR SELECT * FROM webhook_deliveries w
            WHERE w.status = 'pending' AND w.next_attempt_at <= p_due
            ORDER BY w.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED;
    ELSE
        OPEN due FOR SELECT * FROM webhook_deliveries w
            WHERE w.id = ANY(picked) AND (w.status = 'pending' AND w.next_attempt_at <= p_due) IS TRUE
            ORDER BY w.next_attempt_at FOR UPDATE SKIP LOCKED;
    END IF;
    LOOP
        FETCH due INTO d;
        EXIT WHEN NOT FOUND;
        reason := NULL;
        FOR i IN 1 .. cardinality(disabled_subs) LOOP
            IF disabled_subs[i] = d.subscriber_id AND disabled_keys[i] = d.endpoint_key THEN
                reason := disabled_reasons[i];
            END IF;
        END LOOP;
        IF reason IS NULL THEN
            claimed := claimed || d.seq;
            RETURN NEXT d;
        ELSE
            UPDATE webhook_deliveries w SET status = 'failed', last_error = p_disabled_prefix || reason,
                claimed_until = NULL, claimed_by = NULL, updated_at = p_now
            WHERE w.seq = d.seq;
        END IF;
    END LOOP;
    CLOSE due;
    UPDATE webhook_deliveries w SET claimed_until = p_until, claimed_by = p_holder,
        next_attempt_at = p_until
    WHERE w.seq = ANY(claimed);
END
$$;

-- A batch of attempts' writes (see PostgresDeliveries._record_attempts, which
-- works them out): the endpoints whose row changed, the pending deliveries of
-- those it disabled (but the batch's own, p_ids, and the ones leased past the
-- disabling), the attempts in order, the deliveries attempted. The batch's
-- rows are joined to their tables' by key (with seq scans off, one index seek
-- per row: a nested loop), which costs less than a statement per row.
CREATE FUNCTION wagate_record_attempts(
    p_endpoint_subs text[], p_endpoint_keys text[], p_failing_since double precision[],
    p_disabled_at double precision[], p_last_success_at double precision[],
    p_last_failure_at double precision[], p_disabled_reason text[], p_url text[],
    p_disabled_subs text[], p_disabled_keys text[], p_disabled_errors text[],
    p_disabled_ats double precision[],
    p_attempt_ids text[], p_attempt_ats double precision[], p_outcomes text[],
    p_status_codes integer[], p_latencies double precision[], p_bodies text[],
    p_errors text[],
    p_ids text[], p_statuses text[], p_tries integer[], p_codes integer[],
    p_last_errors text[], p_updated_ats double precision[], p_next_ats double precision[],
    p_delivered_ats double precision[])
RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    UPDATE webhook_endpoints e SET failing_since = h.failing_since,
        disabled_at = h.disabled_at, last_success_at = h.last_success_at,
        last_failure_at = h.last_failure_at, disabled_reason = h.disabled_reason, url = h.url
    FROM unnest(p_endpoint_subs, p_endpoint_keys, p_failing_since, p_disabled_at,
                p_last_success_at, p_last_failure_at, p_disabled_reason, p_url)
        AS h (sub, key, failing_since, disabled_at, last_success_at, last_failure_at,
              disabled_reason, url)
    WHERE e.subscriber_id = h.sub AND e.endpoint_key = h.key;
    FOR i IN 1 .. cardinality(p_disabled_subs) LOOP
        UPDATE webhook_deliveries d SET status = 'failed', last_error = p_disabled_errors[i],
            claimed_until = NULL, claimed_by = NULL, updated_at = p_disabled_ats[i]
        WHERE d.subscriber_id = p_disabled_subs[i] AND d.endpoint_key = p_disabled_keys[i]
            AND d.status = 'pending' AND d.id <> ALL(p_ids)
            AND (d.claimed_until IS NULL OR d.claimed_until < p_disabled_ats[i]);
    END LOOP;
    INSERT INTO webhook_attempts (delivery_id, at, outcome, status_code, latency_ms,
                                  response_body, error)
    SELECT a.id, a.at, a.outcome, a.code, a.latency, a.body, a.error
    FROM unnest(p_attempt_ids, p_attempt_ats, p_outcomes, p_status_codes, p_latencies,
                p_bodies, p_errors) WITH ORDINALITY
        AS a (id, at, outcome, code, latency, body, error, ord)
    ORDER BY a.ord;
    UPDATE webhook_deliveries d SET status = x.status, attempts = d.attempts + x.tries,
        claimed_until = NULL, claimed_by = NULL, last_status_code = x.code,
        last_error = x.error, updated_at = x.at,
        next_attempt_at = COALESCE(x.next_at, d.next_attempt_at),
        delivered_at = COALESCE(x.delivered_at, d.delivered_at)
    FROM unnest(p_ids, p_statuses, p_tries, p_codes, p_last_errors, p_updated_ats, p_next_ats,
                p_delivered_ats) AS x (id, status, tries, code, error, at, next_at, delivered_at)
    WHERE d.id = x.id;
END
$$;
