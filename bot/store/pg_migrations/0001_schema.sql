-- wagate on PostgreSQL: the schema the SQLite migrations 0001-0005 build, in
-- one step, with claims that name their holder (claimed_by: a worker id) next
-- to their lease (claimed_until). Times are Unix seconds, as in SQLite.
CREATE TABLE registrations (
    instance_id integer NOT NULL,
    number text NOT NULL,
    locale text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'opted_out')),
    keyword_subscriber text,
    keyword_at double precision,
    registered_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    opted_out_at double precision,
    PRIMARY KEY (instance_id, number)
);
CREATE INDEX registrations_number ON registrations (number);
CREATE INDEX registrations_status ON registrations (status, instance_id);

CREATE TABLE groups (
    instance_id integer NOT NULL,
    group_id text NOT NULL,
    name text NOT NULL,
    name_key text NOT NULL,
    registered_at double precision NOT NULL,
    PRIMARY KEY (instance_id, group_id)
);
CREATE INDEX groups_name ON groups (instance_id, name_key);

CREATE TABLE inbound (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL,
    provider_message_id text NOT NULL,
    instance_id integer NOT NULL,
    sender text NOT NULL,
    user_id text,
    group_id text,
    kind text NOT NULL,
    text text,
    received_at double precision NOT NULL,
    UNIQUE (provider, provider_message_id)
);
CREATE INDEX inbound_sender ON inbound (sender);

CREATE TABLE outbound (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    instance_id integer NOT NULL,
    to_number text,
    group_id text,
    type text NOT NULL,
    text text,
    caption text,
    filename text,
    mime text,
    media bytea,
    subscriber_id text,
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    claimed_until double precision,
    claimed_by text,
    provider_message_id text,
    error_code integer,
    error_title text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE INDEX outbound_due ON outbound (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outbound_claimed ON outbound (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX outbound_provider_id ON outbound (provider_message_id);
CREATE INDEX outbound_to ON outbound (to_number, instance_id);
CREATE INDEX outbound_chat_recent ON outbound (instance_id, to_number, created_at);
CREATE INDEX outbound_group_recent ON outbound (instance_id, group_id, created_at)
    WHERE group_id IS NOT NULL;

CREATE TABLE auto_replies (
    instance_id integer NOT NULL,
    number text NOT NULL,
    kind text NOT NULL,
    last_at double precision NOT NULL,
    PRIMARY KEY (instance_id, number, kind)
);

CREATE TABLE early_statuses (
    provider_message_id text PRIMARY KEY,
    status text NOT NULL,
    error_code integer,
    error_title text,
    received_at double precision NOT NULL
);
CREATE INDEX early_statuses_age ON early_statuses (received_at);

-- Send API: the running quota period and every recipient ever sent to; a
-- send locks its subscriber's quota row, so checks and counts never race.
CREATE TABLE send_quota (
    subscriber_id text PRIMARY KEY,
    period_start double precision NOT NULL,
    count integer NOT NULL
);

CREATE TABLE send_recipients (
    subscriber_id text NOT NULL,
    recipient text NOT NULL,
    first_sent_at double precision NOT NULL,
    PRIMARY KEY (subscriber_id, recipient)
);

CREATE TABLE webhook_deliveries (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    subscriber_id text NOT NULL,
    endpoint_key text NOT NULL,
    url text NOT NULL,
    format text NOT NULL,
    event_type text NOT NULL,
    payload text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    claimed_until double precision,
    claimed_by text,
    last_status_code integer,
    last_error text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    delivered_at double precision
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries (claimed_by)
    WHERE claimed_by IS NOT NULL;
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, created_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries
    (subscriber_id, endpoint_key, status);

CREATE TABLE webhook_attempts (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id text NOT NULL,
    at double precision NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    latency_ms double precision,
    response_body text,
    error text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, seq);

CREATE TABLE webhook_endpoints (
    subscriber_id text NOT NULL,
    endpoint_key text NOT NULL,
    url text NOT NULL,
    failing_since double precision,
    last_success_at double precision,
    last_failure_at double precision,
    disabled_at double precision,
    disabled_reason text,
    PRIMARY KEY (subscriber_id, endpoint_key)
);
