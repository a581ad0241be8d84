-- A claim of outbound rows writes only its lease (claimed_until, claimed_by)
-- and leaves next_attempt_at as it was (bot/store/postgres/outbound.py): with
-- neither in an index, the row's new version is a HOT update, on its own page
-- and with no new index entry, where it used to add one to each of the eight
-- indexes the row was in (~780 bytes of WAL per message claimed). Claims and
-- next-due lookups walk past the leased rows (as many as are in flight).
-- release_claims finds a holder's rows among the queued ones (at a start or a
-- stop, not per message). Webhook deliveries keep claims that move
-- next_attempt_at: a webhook worker holds up to 512 in flight, and walking
-- past them cost each claim and next-due more than the entries saved.
DROP INDEX outbound_claimed;
-- Room on each page for a claim's version of its rows (pages filled by inserts
-- keep a fifth free; a page's dead versions are pruned as it is read).
ALTER TABLE outbound SET (fillfactor = 80);
-- Looked up by equality only (a status, a reply's context): a queued row,
-- with no provider id yet, takes no entry.
DROP INDEX outbound_provider_id;
CREATE INDEX outbound_provider_id ON outbound (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
-- A sent mark (0011's wagate_mark_sent_from) in one body: it took the status
-- lock and read the row under its lock, then called 0005's wagate_mark_sent,
-- which took and read both again.
CREATE OR REPLACE FUNCTION wagate_mark_sent_from(p_lock integer, p_message_id text,
                                                 p_provider_id text, p_at double precision,
                                                 p_keep_media boolean)
RETURNS text LANGUAGE plpgsql AS $$
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
    RETURN before;
END
$$;
DROP FUNCTION wagate_mark_sent(integer, text, text, double precision, boolean);
