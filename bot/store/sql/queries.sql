-- The store's reads and admin operations whose SQL both backends share.
-- Each block is `-- name --`, then comment lines, then one statement.
-- Parameters are `:name`; each backend's connector turns them into its own
-- placeholders (SQLite keeps `:name`, PostgreSQL numbers them `$n`).
-- `{outbound_columns}`, `{outbound_from}`, `{registration_columns}` and
-- `{delivery_columns}` are the column lists of bot/store/rows.py, put in once
-- when the file is read; `{filters}` is a query's optional filters
-- (`column = :column AND ...`, or `1 = 1`), put in by the caller.

-- get_outbound --
SELECT {outbound_columns} FROM {outbound_from} WHERE o.id = :id

-- status_history --
SELECT at, status, error_code, error_title FROM outbound_history
WHERE message_id = :message_id ORDER BY seq

-- list_outbox --
-- The newest `limit`, handed out oldest first.
SELECT {outbound_columns} FROM {outbound_from} WHERE {filters}
ORDER BY o.seq DESC LIMIT :limit

-- outbound_media --
SELECT media FROM outbound WHERE id = :id

-- queue_depth --
SELECT COUNT(*), MIN(created_at) FROM outbound WHERE status = 'queued'

-- list_registrations --
SELECT {registration_columns} FROM registrations WHERE {filters}
ORDER BY registered_at LIMIT :limit

-- registrations_of --
-- A user's registrations, by number or by user id.
SELECT {registration_columns} FROM registrations
WHERE number = :number OR user_id = :number ORDER BY instance_id

-- has_written --
SELECT EXISTS (SELECT 1 FROM inbound WHERE sender = :number)

-- find_group --
SELECT instance_id, group_id, name, registered_at FROM groups
WHERE instance_id = :instance_id AND name_key = :name_key
ORDER BY registered_at DESC LIMIT 1

-- messages_in --
SELECT 'in' AS direction, provider || ':' || provider_message_id AS id, instance_id,
       sender AS number, group_id, kind AS type, text, CAST(NULL AS TEXT) AS status,
       received_at AS at
FROM inbound WHERE {filters}

-- messages_out --
SELECT 'out', id, instance_id, to_number, group_id, type, COALESCE(text, caption), status,
       created_at
FROM outbound WHERE {filters}

-- message_log --
-- `{filters}` here is the UNION ALL of messages_in and messages_out; the newest
-- `limit`, handed out oldest first.
SELECT * FROM ({filters}) AS log ORDER BY 9 DESC, 1 DESC LIMIT :limit

-- list_deliveries --
SELECT {delivery_columns} FROM webhook_deliveries WHERE {filters}
ORDER BY seq DESC LIMIT :limit

-- get_delivery --
SELECT {delivery_columns} FROM webhook_deliveries WHERE id = :id

-- delivery_attempts --
SELECT delivery_id, at, outcome, status_code, latency_ms, response_body, error
FROM webhook_attempts WHERE delivery_id = :id ORDER BY seq

-- retry_delivery --
-- Due again now, with the same webhook-id and a fresh retry schedule.
UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = :now,
       claimed_until = NULL, claimed_by = NULL, updated_at = :now
WHERE id = :id AND status <> 'pending'

-- pull_delivery_forward --
-- A pending delivery due now instead of at its next attempt, its schedule kept
-- (a failure goes on from there); one being sent (its claim alive) is left be.
UPDATE webhook_deliveries SET updated_at = :now,
       next_attempt_at = CASE WHEN next_attempt_at > :now THEN :now ELSE next_attempt_at END
WHERE id = :id AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= :now)

-- replay_deliveries --
UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = :now,
       claimed_until = NULL, claimed_by = NULL, updated_at = :now
WHERE status = 'failed' AND created_at >= :since AND {filters}

-- pull_deliveries_forward --
-- Those waiting out a retry delay, as pull_delivery_forward; counted by the replay.
UPDATE webhook_deliveries SET next_attempt_at = :now, updated_at = :now
WHERE status = 'pending' AND next_attempt_at > :now
  AND (claimed_until IS NULL OR claimed_until <= :now) AND created_at >= :since AND {filters}

-- delivery_queue_depth --
SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'

-- endpoint_backlogs --
SELECT subscriber_id, endpoint_key, status, COUNT(*) FROM webhook_deliveries
WHERE status IN ('pending', 'failed') GROUP BY subscriber_id, endpoint_key, status

-- list_endpoints --
SELECT subscriber_id, endpoint_key, url, failing_since, last_success_at, last_failure_at,
       disabled_at, disabled_reason
FROM webhook_endpoints ORDER BY subscriber_id, endpoint_key

-- enable_endpoint --
-- Enabled again, its failing streak forgotten.
UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL
WHERE disabled_at IS NOT NULL AND {filters}

-- search_registrations --
SELECT {registration_columns} FROM registrations WHERE {filters}
ORDER BY registered_at DESC LIMIT :limit

-- search_outbound --
SELECT {outbound_columns} FROM {outbound_from} WHERE {filters}
ORDER BY o.seq DESC LIMIT :limit

-- quota_period --
SELECT period_start, count FROM send_quota WHERE subscriber_id = :subscriber_id

-- recipient_count --
SELECT COUNT(*) FROM send_recipients WHERE subscriber_id = :subscriber_id

-- queued_by_instance --
SELECT instance_id, COUNT(*), MIN(created_at) FROM outbound WHERE status = 'queued'
GROUP BY instance_id

-- registration_conflict --
-- Not a statement: the clause after each backend's INSERT of a message's
-- registration, merging it into the one there. Opted out since the first
-- STOP, not the latest; back in clears it.
ON CONFLICT (instance_id, number) DO UPDATE SET locale = excluded.locale,
    status = excluded.status, updated_at = excluded.updated_at,
    user_id = COALESCE(excluded.user_id, registrations.user_id),
    keyword_subscriber = COALESCE(excluded.keyword_subscriber, registrations.keyword_subscriber),
    keyword_at = CASE WHEN excluded.keyword_subscriber IS NULL
                      THEN registrations.keyword_at ELSE excluded.keyword_at END,
    registered_at = CASE WHEN registrations.status = 'active'
                         THEN registrations.registered_at ELSE excluded.registered_at END,
    opted_out_at = CASE WHEN excluded.status = 'active' THEN NULL
                        WHEN registrations.status = 'opted_out'
                        THEN COALESCE(registrations.opted_out_at, excluded.opted_out_at)
                        ELSE excluded.opted_out_at END

-- opt_out_registration --
-- An admin's opt-out: the number recorded opted out, registered or not.
INSERT INTO registrations (instance_id, number, locale, status, registered_at, updated_at,
                           opted_out_at)
VALUES (:instance_id, :number, :locale, 'opted_out', :now, :now, :now)
ON CONFLICT (instance_id, number) DO UPDATE SET
    status = 'opted_out', updated_at = excluded.updated_at, opted_out_at = excluded.opted_out_at

-- managed_version --
-- Bumped by every change to the managed state (bump_managed_version).
SELECT version FROM managed_version

-- managed_subscribers --
-- Every live managed subscriber, in MANAGED_COLUMNS order (bot/store/managed.py).
SELECT id, client_id, plan, since, expires, instances, keyword, email, name, suspended_at
FROM managed_subscribers WHERE deleted_at IS NULL

-- live_secrets --
-- Client secrets still accepted at :now, oldest first.
SELECT subscriber_id, secret_sha256, expires_at FROM subscriber_secrets
WHERE expires_at IS NULL OR expires_at > :now ORDER BY seq

-- bump_managed_version --
-- In every change's transaction: the other processes reload what changed.
UPDATE managed_version SET version = version + 1

-- create_subscriber --
-- Refused (no row) when the id is or was in use: a deleted id is never reused.
INSERT INTO managed_subscribers (id, client_id, plan, since, expires, instances, keyword,
    keyword_key, email, name, created_at, updated_at)
VALUES (:id, :client_id, :plan, :since, :expires, :instances, :keyword, :keyword_key, :email,
    :name, :now, :now)
ON CONFLICT (id) DO NOTHING

-- update_subscriber --
-- `{filters}` is the SET list of what changes.
UPDATE managed_subscribers SET {filters}, updated_at = :now
WHERE id = :id AND deleted_at IS NULL

-- touch_subscriber --
-- The guard of a change to a live managed subscriber's other rows.
UPDATE managed_subscribers SET updated_at = :now WHERE id = :id AND deleted_at IS NULL

-- suspend_subscriber --
UPDATE managed_subscribers SET suspended_at = COALESCE(suspended_at, :now), updated_at = :now
WHERE id = :id AND deleted_at IS NULL

-- resume_subscriber --
UPDATE managed_subscribers SET suspended_at = NULL, updated_at = :now
WHERE id = :id AND deleted_at IS NULL

-- delete_subscriber --
UPDATE managed_subscribers SET deleted_at = :now, updated_at = :now
WHERE id = :id AND deleted_at IS NULL

-- delete_secrets --
DELETE FROM subscriber_secrets WHERE subscriber_id = :subscriber_id

-- end_secrets --
-- A rotation: every secret in force ends at :until at the latest (the
-- overlap), and those already ended go.
UPDATE subscriber_secrets SET expires_at = :until
WHERE subscriber_id = :subscriber_id AND (expires_at IS NULL OR expires_at > :until)

-- carry_secret --
-- A provisioned subscriber's first rotation: the file's secret, which the
-- store does not hold, is kept for the overlap like any earlier one.
INSERT INTO subscriber_secrets (subscriber_id, secret_sha256, created_at, expires_at)
SELECT :subscriber_id, :previous, :now, :until
WHERE NOT EXISTS (SELECT 1 FROM subscriber_secrets WHERE subscriber_id = :subscriber_id)

-- forget_secrets --
DELETE FROM subscriber_secrets WHERE subscriber_id = :subscriber_id AND expires_at <= :now

-- add_secret --
INSERT INTO subscriber_secrets (subscriber_id, secret_sha256, created_at, expires_at)
VALUES (:subscriber_id, :secret_sha256, :now, NULL)

-- audit --
INSERT INTO audit_log (at, actor, address, action, target, details)
VALUES (:now, :actor, :address, :action, :target, :details)

-- list_audit --
-- Newest first; `{filters}` as above (seq < :before pages back).
SELECT seq, at, actor, address, action, target, details FROM audit_log WHERE {filters}
ORDER BY seq DESC LIMIT :limit

-- managed_endpoints --
-- Every endpoint kept in the store, in ENDPOINT_COLUMNS order (bot/store/endpoints.py).
SELECT id, subscriber_id, url, password, format, events, enabled, description, token,
    created_at, updated_at
FROM stored_endpoints ORDER BY created_at, id

-- live_endpoint_secrets --
-- Signing secrets that still sign at :now, oldest first.
SELECT endpoint_id, secret, created_at, expires_at FROM stored_endpoint_secrets
WHERE expires_at IS NULL OR expires_at > :now ORDER BY seq

-- create_endpoint --
INSERT INTO stored_endpoints (id, subscriber_id, url, password, format, events, enabled,
    description, token, created_at, updated_at)
VALUES (:id, :subscriber_id, :url, :password, :format, :events, :enabled, :description,
    :token, :now, :now)

-- update_endpoint --
-- `{filters}` is the SET list of what changes.
UPDATE stored_endpoints SET {filters}, updated_at = :now
WHERE id = :id AND subscriber_id = :subscriber_id

-- delete_endpoint --
DELETE FROM stored_endpoints WHERE id = :id AND subscriber_id = :subscriber_id

-- delete_endpoint_secrets --
DELETE FROM stored_endpoint_secrets WHERE endpoint_id = :endpoint_id

-- end_endpoint_secrets --
-- A rotation: every signing secret in force stops signing at :until at the latest.
UPDATE stored_endpoint_secrets SET expires_at = :until
WHERE endpoint_id = :endpoint_id AND (expires_at IS NULL OR expires_at > :until)

-- forget_endpoint_secrets --
DELETE FROM stored_endpoint_secrets WHERE endpoint_id = :endpoint_id AND expires_at <= :now

-- add_endpoint_secret --
INSERT INTO stored_endpoint_secrets (endpoint_id, secret, created_at, expires_at)
VALUES (:endpoint_id, :secret, :now, NULL)

-- touch_endpoint --
-- The guard of a change to an endpoint's secrets.
UPDATE stored_endpoints SET updated_at = :now WHERE id = :id AND subscriber_id = :subscriber_id

-- delete_subscriber_endpoint_secrets --
-- A deleted subscriber's endpoints go with it, their signing secrets first.
DELETE FROM stored_endpoint_secrets
WHERE endpoint_id IN (SELECT id FROM stored_endpoints WHERE subscriber_id = :subscriber_id)

-- delete_subscriber_endpoints --
DELETE FROM stored_endpoints WHERE subscriber_id = :subscriber_id
