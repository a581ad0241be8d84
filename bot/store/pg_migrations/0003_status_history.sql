-- Each outbound message's status history: one row per change the store
-- applies (queued, sent, each advancing provider status, failed) and per
-- retried attempt ('retry', with the error that caused it), written in the
-- transaction that makes the change. Messages are never deleted, so neither
-- are their rows.
CREATE TABLE outbound_history (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL,
    at double precision NOT NULL,
    status text NOT NULL,
    error_code integer,
    error_title text
);
CREATE INDEX outbound_history_message ON outbound_history (message_id, seq);
