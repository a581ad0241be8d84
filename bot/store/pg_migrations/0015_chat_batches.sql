-- Chats held and written in batches (bot/store/postgres/inbound.py): the
-- states of the messages that arrive while one batch is being read are read
-- together, on one connection, in one call; the writes of the chats that
-- connection holds go together in one statement.
--
-- wagate_chats_context: wagate_chat_context (0013) for several chats, one
-- row per chat whose lock it took, led by the chat's place in the arrays
-- (`ord`). Unless `p_wait`, the locks are tried, in the keys' order, never
-- waited for: a chat another process holds is left out (its message reads
-- alone, waiting for it), so that one busy chat never holds back the
-- batch's others. A chat given twice is locked twice (session locks count):
-- each of its holds passes or releases its own. Then one query reads every
-- state, after the locks (a function's statements each read anew, see 0010).
CREATE FUNCTION wagate_chats_context(p_lock integer, p_wait boolean, p_keys integer[],
                                     p_instances integer[], p_senders text[], p_chats text[],
                                     p_groups text[], p_users text[])
RETURNS TABLE (ord bigint, instance_id integer, number text, locale text, status text,
               keyword_subscriber text, registered_at double precision,
               updated_at double precision, opted_out_at double precision, user_id text,
               last_inbound_at double precision, keyword_at double precision,
               any_at double precision, hint_at double precision, group_instance integer,
               group_id text, group_name text, group_registered_at double precision,
               last_subscriber text, last_at double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    k integer;
    held integer[] := '{}';
BEGIN
    FOREACH k IN ARRAY (SELECT array_agg(x ORDER BY x) FROM unnest(p_keys) AS x) LOOP
        IF p_wait THEN
            PERFORM pg_advisory_lock(p_lock, k);
            held := held || k;
        ELSIF pg_try_advisory_lock(p_lock, k) THEN
            held := held || k;
        END IF;
    END LOOP;
    RETURN QUERY SELECT u.ord, r.instance_id, r.number, r.locale, r.status,
        r.keyword_subscriber, r.registered_at, r.updated_at, r.opted_out_at, r.user_id,
        r.last_inbound_at, r.keyword_at,
        (SELECT a.last_at FROM auto_replies a WHERE a.instance_id = u.inst
         AND a.number = u.chat AND a.kind = 'any'),
        (SELECT a.last_at FROM auto_replies a WHERE a.instance_id = u.inst
         AND a.number = u.chat AND a.kind = 'hint'),
        g.instance_id, g.group_id, g.name, g.registered_at,
        last.subscriber_id, last.created_at
    FROM unnest(p_keys, p_instances, p_senders, p_chats, p_groups, p_users) WITH ORDINALITY
        AS u (key, inst, sender, chat, grp, usr, ord)
    LEFT JOIN LATERAL (SELECT * FROM (
        SELECT x.*, 0 AS rank FROM registrations x WHERE x.instance_id = u.inst
        AND x.number = u.sender
        UNION ALL
        SELECT x.*, 1 FROM registrations x WHERE x.instance_id = u.inst
        AND x.user_id = u.usr) AS reg ORDER BY reg.rank LIMIT 1) AS r ON TRUE
    LEFT JOIN groups g ON g.instance_id = u.inst AND g.group_id = u.grp
    LEFT JOIN LATERAL ((SELECT o.subscriber_id, o.created_at FROM outbound o
        WHERE u.grp IS NULL AND o.instance_id = u.inst
        AND o.to_number = COALESCE(r.number, u.sender) AND o.subscriber_id IS NOT NULL
        ORDER BY o.created_at DESC LIMIT 1)
        UNION ALL
        (SELECT o.subscriber_id, o.created_at FROM outbound o
        WHERE u.grp IS NOT NULL AND o.instance_id = u.inst AND o.group_id = u.grp
        AND o.subscriber_id IS NOT NULL ORDER BY o.created_at DESC LIMIT 1)) AS last ON TRUE
    WHERE u.key = ANY (held)
    ORDER BY u.ord;
END
$$;

-- wagate_chat_pass (0010) for several chats, written in one statement: each
-- chat's transaction lock first, then its session lock released. A session
-- lock no longer held is an error: the chat may have been decided elsewhere
-- since its state was read (a batch's statement failed after passing it, and
-- its messages go again one by one), so the write must not go in.
CREATE FUNCTION wagate_chats_pass(p_lock integer, p_keys integer[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    k integer;
BEGIN
    FOREACH k IN ARRAY p_keys LOOP
        PERFORM pg_advisory_xact_lock(p_lock, k);
        IF NOT pg_advisory_unlock(p_lock, k) THEN
            RAISE EXCEPTION 'chat lock % is no longer held', k
                USING ERRCODE = 'lock_not_available';
        END IF;
    END LOOP;
    RETURN cardinality(p_keys);
END
$$;

-- wagate_chat_pass (0010) as strict: a message written alone after its
-- batch's statement failed may have lost its chat's session lock with it.
CREATE OR REPLACE FUNCTION wagate_chat_pass(p_lock integer, p_key integer, p_channels text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM wagate_chats_pass(p_lock, ARRAY[p_key]);
    PERFORM pg_notify(c, '') FROM unnest(p_channels) AS c;
END
$$;
