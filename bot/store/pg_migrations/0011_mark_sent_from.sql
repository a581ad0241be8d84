-- wagate_mark_sent (0005) that answers the status its message had before the
-- mark, read under the locks that mark takes (taking them again in the same
-- transaction costs nothing and waits for nothing): a batch of marks in one
-- statement then queues the `message.status sent` events of the marks that
-- moved their message out of a queued status, and of no other.
CREATE FUNCTION wagate_mark_sent_from(p_lock integer, p_message_id text, p_provider_id text,
                                      p_at double precision, p_keep_media boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    before text;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock, hashtext(p_provider_id));
    SELECT o.status INTO before FROM outbound o WHERE o.id = p_message_id FOR UPDATE;
    PERFORM wagate_mark_sent(p_lock, p_message_id, p_provider_id, p_at, p_keep_media);
    RETURN before;
END
$$;
