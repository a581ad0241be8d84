-- A fetch's end (the media worker's): the file kept, or failed, or to be tried
-- again at p_retry_at; once final, the deliveries waiting for it released.
-- Answers how many were, and, once final, what the row says of the file that
-- the end does not (what the webhook worker then reads for the file's link).
-- A batch of ends calls it once per file, in order, in one statement
-- (bot/store/postgres/media.py): each row is found by its key here, whatever
-- the tables' statistics say (the batch joined to the tables in one statement
-- was planned, while they were small, as a scan of every row, and that plan
-- was kept as they grew).
CREATE FUNCTION wagate_finish_media(p_id text, p_content bytea, p_sha256 text,
                                    p_mime_type text, p_error text,
                                    p_retry_at double precision, p_at double precision,
                                    OUT released integer, OUT file_kind text,
                                    OUT file_mime text, OUT file_name text,
                                    OUT file_expires double precision)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_content IS NOT NULL THEN
        UPDATE inbound_media m SET status = 'ready', content = p_content,
            size = length(p_content), sha256 = p_sha256,
            mime_type = COALESCE(p_mime_type, m.mime_type), error = NULL,
            attempts = attempts + 1, fetched_at = p_at, claimed_until = NULL,
            claimed_by = NULL
        WHERE id = p_id
        RETURNING m.kind, m.mime_type, m.filename, m.expires_at
        INTO file_kind, file_mime, file_name, file_expires;
    ELSIF p_retry_at IS NOT NULL THEN
        UPDATE inbound_media m SET error = p_error, attempts = attempts + 1,
            next_attempt_at = p_retry_at, claimed_until = NULL, claimed_by = NULL
        WHERE id = p_id;
        released := 0;
        RETURN;
    ELSE
        UPDATE inbound_media m SET status = 'failed', error = p_error,
            attempts = attempts + 1, claimed_until = NULL, claimed_by = NULL
        WHERE id = p_id
        RETURNING m.kind, m.mime_type, m.filename, m.expires_at
        INTO file_kind, file_mime, file_name, file_expires;
    END IF;
    -- Only deliveries still waiting: one already tried keeps its schedule.
    -- Found by the file's index alone: its due time's (`+ 0` keeps it out)
    -- would also walk every other delivery waiting for its file or its
    -- endpoint (232 buffers a call behind a backlog, for one row).
    UPDATE webhook_deliveries SET next_attempt_at = p_at
    WHERE media_id = p_id AND status = 'pending' AND attempts = 0
        AND claimed_until IS NULL AND next_attempt_at + 0 > p_at;
    GET DIAGNOSTICS released = ROW_COUNT;
END
$$;
