-- Due rows by endpoint (number), then due time: a claim that skips busy
-- endpoints (paced numbers) steps from one to the next and takes each other
-- one's earliest rows, never walking a busy one's backlog.
CREATE INDEX webhook_deliveries_group ON webhook_deliveries
    (subscriber_id, endpoint_key, next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbound_group_due ON outbound (instance_id, next_attempt_at)
    WHERE status = 'queued';
