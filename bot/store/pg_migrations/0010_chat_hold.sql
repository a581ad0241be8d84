-- A chat held from its state's read to its commit in two round trips
-- (bot/store/postgres/inbound.py) instead of an open transaction's four.
--
-- wagate_chat_context: the chat's lock, taken at session level (it outlives
-- this call's transaction: no transaction stays open while the handlers run),
-- then the chat's state. A statement reads as of its start, before a lock it
-- waits for; a function's statements each read anew, so the state read here
-- holds every commit made before the lock was granted. The columns are
-- rows.py's REG_COLUMNS, keyword_at, the auto-reply marks ('any', 'hint'), the
-- group, and the subscriber that last sent to the chat (its last_sender).
-- A change to what the context holds is a new migration replacing this one.
CREATE FUNCTION wagate_chat_context(p_lock integer, p_key integer, p_instance integer,
                                    p_sender text, p_chat text, p_group text, p_user text)
RETURNS TABLE (instance_id integer, number text, locale text, status text,
               keyword_subscriber text, registered_at double precision,
               updated_at double precision, opted_out_at double precision, user_id text,
               last_inbound_at double precision, keyword_at double precision,
               any_at double precision, hint_at double precision, group_instance integer,
               group_id text, group_name text, group_registered_at double precision,
               last_subscriber text, last_at double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_lock(p_lock, p_key);
    RETURN QUERY SELECT r.instance_id, r.number, r.locale, r.status, r.keyword_subscriber,
        r.registered_at, r.updated_at, r.opted_out_at, r.user_id, r.last_inbound_at,
        r.keyword_at,
        (SELECT a.last_at FROM auto_replies a WHERE a.instance_id = p_instance
         AND a.number = p_chat AND a.kind = 'any'),
        (SELECT a.last_at FROM auto_replies a WHERE a.instance_id = p_instance
         AND a.number = p_chat AND a.kind = 'hint'),
        g.instance_id, g.group_id, g.name, g.registered_at,
        last.subscriber_id, last.created_at
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (SELECT * FROM registrations x WHERE x.instance_id = p_instance
        AND (x.number = p_sender OR x.user_id = p_user)
        ORDER BY x.number = p_sender DESC LIMIT 1) AS r ON TRUE
    LEFT JOIN groups g ON g.instance_id = p_instance AND g.group_id = p_group
    -- The last sender of a number's chat or of a group's, each by its own
    -- index (outbound_chat_recent, outbound_group_recent): the branch that
    -- does not apply is cut before it runs.
    LEFT JOIN LATERAL ((SELECT o.subscriber_id, o.created_at FROM outbound o
        WHERE p_group IS NULL AND o.instance_id = p_instance
        AND o.to_number = COALESCE(r.number, p_sender) AND o.subscriber_id IS NOT NULL
        ORDER BY o.created_at DESC LIMIT 1)
        UNION ALL
        (SELECT o.subscriber_id, o.created_at FROM outbound o
        WHERE p_group IS NOT NULL AND o.instance_id = p_instance AND o.group_id = p_group
        AND o.subscriber_id IS NOT NULL ORDER BY o.created_at DESC LIMIT 1)) AS last ON TRUE;
END
$$;

-- The chat handed from the session lock wagate_chat_context took to the
-- calling statement's transaction (the message's write, autocommitted): the
-- transaction's lock first, so that the chat is never free before the write
-- commits (another process's read waits for the commit, then sees it); and
-- the write's NOTIFYs (`p_channels`), which go at its commit.
CREATE FUNCTION wagate_chat_pass(p_lock integer, p_key integer, p_channels text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock, p_key);
    PERFORM pg_advisory_unlock(p_lock, p_key);
    PERFORM pg_notify(c, '') FROM unnest(p_channels) AS c;
END
$$;
