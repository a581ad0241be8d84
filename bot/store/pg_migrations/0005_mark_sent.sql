-- mark_sent in one round trip. Its lock on the provider message id (the lock
-- apply_status takes, see postgres.py) must be held before it reads, and a
-- statement reads as of its start, before any lock it waits for: so one
-- statement cannot do it, a function can (each of its statements reads anew).
-- Called alone, it is its own transaction. The history rows and the status
-- (an early status parked by apply_status wins when it advances past 'sent':
-- rules.STATUS_RANK) are those the store wrote in several statements before.
CREATE FUNCTION wagate_mark_sent(p_lock integer, p_message_id text, p_provider_id text,
                                 p_at double precision, p_keep_media boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    before text;
    early early_statuses%ROWTYPE;
    advances boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock, hashtext(p_provider_id));
    SELECT o.status INTO before FROM outbound o WHERE o.id = p_message_id FOR UPDATE;
    DELETE FROM early_statuses e WHERE e.provider_message_id = p_provider_id RETURNING * INTO early;
    advances := COALESCE(early.status IN ('delivered', 'read', 'failed'), false);
    IF before IN ('queued', 'sending') THEN
        INSERT INTO outbound_history (message_id, at, status) VALUES (p_message_id, p_at, 'sent');
    END IF;
    IF advances THEN
        INSERT INTO outbound_history (message_id, at, status, error_code, error_title)
            VALUES (p_message_id, early.received_at, early.status, early.error_code,
                    early.error_title);
    END IF;
    -- The provider has fetched kept media by the time it reports any status.
    UPDATE outbound o SET
        status = CASE WHEN advances THEN early.status
                      WHEN o.status IN ('queued', 'sending') THEN 'sent' ELSE o.status END,
        error_code = CASE WHEN advances THEN COALESCE(early.error_code, o.error_code)
                          ELSE o.error_code END,
        error_title = CASE WHEN advances THEN COALESCE(early.error_title, o.error_title)
                           ELSE o.error_title END,
        provider_message_id = p_provider_id, attempts = o.attempts + 1,
        claimed_until = NULL, claimed_by = NULL,
        media = CASE WHEN p_keep_media AND early.provider_message_id IS NULL THEN o.media END,
        updated_at = p_at
    WHERE o.id = p_message_id;
END
$$;
