-- Each outbound message's status history: one row per change the store
-- applies (queued, sent, each advancing provider status, failed) and per
-- retried attempt ('retry', with the error that caused it), written in the
-- transaction that makes the change. Messages are never deleted, so neither
-- are their rows. Messages older than the table get what their row tells:
-- queued at creation, then their current status (or, still queued after a
-- failed attempt, that retry) at their last change, with its error.
CREATE TABLE outbound_history (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    at double precision NOT NULL,
    status text NOT NULL,
    error_code integer,
    error_title text
);
CREATE INDEX outbound_history_message ON outbound_history (message_id, seq);
INSERT INTO outbound_history (message_id, at, status)
    SELECT id, created_at, 'queued' FROM outbound ORDER BY seq;
INSERT INTO outbound_history (message_id, at, status, error_code, error_title)
    SELECT id, updated_at,
           CASE WHEN status IN ('queued', 'sending') THEN 'retry' ELSE status END,
           error_code, error_title
    FROM outbound
    WHERE status NOT IN ('queued', 'sending') OR error_code IS NOT NULL
          OR error_title IS NOT NULL
    ORDER BY seq;
