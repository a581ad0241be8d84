-- Due rows by endpoint (number), then due time: a claim that skips busy
-- endpoints (paced numbers) steps from one to the next (a loose index scan)
-- and takes each other one's earliest rows, never walking a busy one's backlog.
-- The predicate `(status = ...) IS TRUE` is `status = ...` written so that only
-- these seeks can use these indexes and only these indexes serve them (never
-- the due index, which would walk the busy one's rows): bot/store/postgres/groups.py.
-- The ids ride along (INCLUDE): a claim's picks come from the index alone.
CREATE INDEX webhook_deliveries_group ON webhook_deliveries
    (subscriber_id, endpoint_key, next_attempt_at) INCLUDE (id)
    WHERE (status = 'pending') IS TRUE;
CREATE INDEX outbound_group_due ON outbound (instance_id, next_attempt_at) INCLUDE (seq)
    WHERE (status = 'queued') IS TRUE;
