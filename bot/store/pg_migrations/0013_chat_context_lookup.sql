-- wagate_chat_context (0010) with the registration found by two index
-- lookups, the number's own row first, then the one known by the user id (as
-- the store's other registration reads, bot/store/postgres/effects.py
-- registration_of). One lookup with `number = .. OR user_id = ..` was planned
-- once per connection, while the table was new, as a scan of the instance's
-- rows, and kept that plan: every message then read every registration of its
-- number. Everything else is as in 0010.
CREATE OR REPLACE FUNCTION wagate_chat_context(p_lock integer, p_key integer, p_instance integer,
                                               p_sender text, p_chat text, p_group text,
                                               p_user text)
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
    LEFT JOIN LATERAL (SELECT * FROM (
        SELECT x.*, 0 AS rank FROM registrations x WHERE x.instance_id = p_instance
        AND x.number = p_sender
        UNION ALL
        SELECT x.*, 1 FROM registrations x WHERE x.instance_id = p_instance
        AND x.user_id = p_user) AS reg ORDER BY reg.rank LIMIT 1) AS r ON TRUE
    LEFT JOIN groups g ON g.instance_id = p_instance AND g.group_id = p_group
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
