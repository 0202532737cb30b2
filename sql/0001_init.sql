-- 0001_init.sql — the initial sandboxd schema.
--
-- Applied by db_migrate() (storage/dbmigrate.c) as role sandboxd_owner, inside one transaction
-- (do not put BEGIN/COMMIT or CREATE INDEX CONCURRENTLY in migration files). Forward-only:
-- never edit this file once released; add 0002_*.sql instead. See docs/internals/DATABASE.md.
--
-- Tenancy: every table with an org_id has row-level security ENABLEd and FORCEd and the policy
-- made by sbx_enable_tenant_rls(); the daemon connects as sandboxd_app (not owner, no BYPASSRLS)
-- and sets `sbx.org_id` per transaction (db_begin). Cross-org work goes through the few
-- SECURITY DEFINER functions at the end of this file, which return ids only.

-- Preconditions: the roles exist, and the app role cannot bypass RLS.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sandboxd_app') THEN
        RAISE EXCEPTION 'role sandboxd_app does not exist (see scripts/pg.sh)';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sandboxd_app'
               AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'role sandboxd_app must not be SUPERUSER or BYPASSRLS';
    END IF;
    IF pg_has_role('sandboxd_app', current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'role sandboxd_app must not be a member of the owner role %', current_user;
    END IF;
    IF NOT (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'the migration role % needs BYPASSRLS (definer functions read across orgs)',
            current_user;
    END IF;
END
$$;

-- The org of the current transaction, or NULL when unset/empty (then every policy is false).
CREATE FUNCTION sbx_current_org() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('sbx.org_id', true), '')::uuid $$;

-- ENABLE + FORCE RLS on a tenant table and add the standard policy on `col`. Used by every
-- migration that creates a tenant table; tests/db checks that none is missed.
CREATE FUNCTION sbx_enable_tenant_rls(p_table regclass, p_col name DEFAULT 'org_id') RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    EXECUTE format('CREATE POLICY tenant_isolation ON %s USING (%I = public.sbx_current_org()) '
                   'WITH CHECK (%I = public.sbx_current_org())', p_table, p_col, p_col);
END
$$;
REVOKE ALL ON FUNCTION sbx_enable_tenant_rls(regclass, name) FROM PUBLIC;

-- Keeps updated_at current on tables that have it.
CREATE FUNCTION sbx_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

-- ---------------------------------------------------------------------------------------------
-- Organizations, users, API keys

CREATE TABLE orgs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug        text NOT NULL CONSTRAINT orgs_slug_key UNIQUE
                CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    plan        text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'team', 'enterprise')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- stored lower-cased; unique across all orgs (constraints are checked across RLS)
    email       text NOT NULL CONSTRAINT users_email_key UNIQUE
                CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320
                       AND email LIKE '%_@_%'),
    first_name  text CHECK (length(first_name) <= 200),
    last_name   text CHECK (length(last_name) <= 200),
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    use_case    text CHECK (length(use_case) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- the short public lookup id embedded in the key (sbx_<mode>_<key_id>_<secret>_<crc>)
    key_id          text NOT NULL CONSTRAINT api_keys_key_id_key UNIQUE
                    CHECK (key_id ~ '^[0-9A-Za-z]{8,32}$'),
    name            text NOT NULL DEFAULT 'default' CHECK (length(name) BETWEEN 1 AND 200),
    key_prefix      text NOT NULL CHECK (length(key_prefix) BETWEEN 1 AND 64),  -- display only
    key_last4       text CHECK (length(key_last4) <= 8),                         -- display only
    key_hash        bytea NOT NULL CHECK (octet_length(key_hash) = 32),          -- sha256(secret)
    scopes          text[] NOT NULL DEFAULT '{}',
    mode            text NOT NULL DEFAULT 'live' CHECK (mode IN ('live', 'test')),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz,
    created_by_user uuid,
    created_by_key  uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    -- composite keys: a reference can never point into another org
    FOREIGN KEY (org_id, created_by_user) REFERENCES users (org_id, id)
        ON DELETE SET NULL (created_by_user),
    FOREIGN KEY (org_id, created_by_key) REFERENCES api_keys (org_id, id)
        ON DELETE SET NULL (created_by_key)
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at);

-- ---------------------------------------------------------------------------------------------
-- Sandboxes and what runs in them

CREATE TABLE templates (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    description     text CHECK (length(description) <= 2000),
    image           text CHECK (length(image) <= 1000),
    cpus            text,
    memory          text,
    cpus_milli      integer CHECK (cpus_milli > 0),
    memory_bytes    bigint CHECK (memory_bytes > 0),
    timeout_seconds integer CHECK (timeout_seconds > 0),
    env             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(env) = 'object'),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);

CREATE TABLE sandboxes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'creating'
                    CHECK (status IN ('creating', 'running', 'terminating', 'terminated', 'error')),
    status_reason   text CHECK (length(status_reason) <= 2000),
    template        text,
    cpus            text,                 -- as requested ("0.5"), echoed by the API
    memory          text,                 -- as requested ("512Mi")
    cpus_milli      integer CHECK (cpus_milli > 0),
    memory_bytes    bigint CHECK (memory_bytes > 0),
    timeout_seconds integer CHECK (timeout_seconds > 0),
    env             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(env) = 'object'),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    session_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    runtime         text,                 -- 'local' | 'kubernetes' (backend that owns it)
    runtime_ref     text,                 -- pod name / local handle
    pod_ip          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    expires_at      timestamptz,
    stopped_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by_key  uuid,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, created_by_key) REFERENCES api_keys (org_id, id)
        ON DELETE SET NULL (created_by_key)
);
CREATE INDEX sandboxes_org_created_idx ON sandboxes (org_id, created_at DESC);
CREATE INDEX sandboxes_active_idx ON sandboxes (expires_at)
    WHERE status IN ('creating', 'running', 'terminating');

CREATE TABLE executions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL,
    sandbox_id      uuid NOT NULL,
    command         text NOT NULL,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed', 'timeout', 'killed', 'error')),
    exit_code       integer,
    reason          text CHECK (length(reason) <= 2000),
    duration_ms     bigint CHECK (duration_ms >= 0),
    stdout_bytes    bigint NOT NULL DEFAULT 0 CHECK (stdout_bytes >= 0),
    stderr_bytes    bigint NOT NULL DEFAULT 0 CHECK (stderr_bytes >= 0),
    streamed        boolean NOT NULL DEFAULT false,
    created_by_key  uuid,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    FOREIGN KEY (org_id, sandbox_id) REFERENCES sandboxes (org_id, id) ON DELETE CASCADE
);
CREATE INDEX executions_sandbox_idx ON executions (org_id, sandbox_id, started_at);

-- ---------------------------------------------------------------------------------------------
-- Checkpoints, blobs, artifacts

-- Content-addressed objects, deduplicated per org (never across orgs: no cross-tenant
-- "does this content exist" oracle).
CREATE TABLE blobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size            bigint NOT NULL CHECK (size >= 0),
    storage_key     text NOT NULL,
    refcount        integer NOT NULL DEFAULT 0 CHECK (refcount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, sha256)
);

CREATE TABLE checkpoints (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    sandbox_id      uuid,                 -- NULL once the sandbox row is gone; checkpoints outlive it
    parent_id       uuid,                 -- lineage (clone / checkpoint of a restored sandbox)
    generation      integer NOT NULL DEFAULT 0 CHECK (generation >= 0),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 2000),
    status          text NOT NULL DEFAULT 'creating' CHECK (status IN ('creating', 'ready', 'failed')),
    manifest_key    text,                 -- blob store key of the manifest
    manifest_sha256 text CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    size            bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    file_count      integer NOT NULL DEFAULT 0 CHECK (file_count >= 0),
    checksum        text,
    include_paths   text[] NOT NULL DEFAULT '{}',
    exclude_paths   text[] NOT NULL DEFAULT '{}',
    include_env     boolean NOT NULL DEFAULT false,
    env             jsonb CHECK (jsonb_typeof(env) = 'object'),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_by_key  uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, sandbox_id) REFERENCES sandboxes (org_id, id) ON DELETE SET NULL (sandbox_id),
    FOREIGN KEY (org_id, parent_id) REFERENCES checkpoints (org_id, id) ON DELETE SET NULL (parent_id)
);
CREATE INDEX checkpoints_sandbox_idx ON checkpoints (org_id, sandbox_id, created_at);

CREATE TABLE artifacts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    sandbox_id      uuid,
    path            text NOT NULL CHECK (length(path) BETWEEN 1 AND 4096),   -- path in the sandbox
    remote_path     text NOT NULL,                                          -- object key
    size            bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    checksum        text,
    content_type    text NOT NULL DEFAULT 'application/octet-stream',
    status          text NOT NULL DEFAULT 'uploading' CHECK (status IN ('uploading', 'ready', 'failed')),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_by_key  uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, sandbox_id) REFERENCES sandboxes (org_id, id) ON DELETE SET NULL (sandbox_id)
);
CREATE INDEX artifacts_sandbox_idx ON artifacts (org_id, sandbox_id, created_at);
CREATE INDEX artifacts_expires_idx ON artifacts (expires_at) WHERE expires_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Webhooks: endpoints, the outbox, deliveries

CREATE TABLE webhooks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    events          text[] NOT NULL DEFAULT '{*}',    -- event names, or {*}
    secret          text NOT NULL,                    -- signing secret (whsec_…); never logged
    headers         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    description     text CHECK (length(description) <= 2000),
    retry_count     integer NOT NULL DEFAULT 3 CHECK (retry_count BETWEEN 0 AND 20),
    retry_delay_ms  integer NOT NULL DEFAULT 1000 CHECK (retry_delay_ms BETWEEN 0 AND 86400000),
    timeout_ms      integer NOT NULL DEFAULT 30000 CHECK (timeout_ms BETWEEN 100 AND 120000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);

-- The outbox: written in the same transaction as the state change it announces.
CREATE TABLE webhook_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    event           text NOT NULL CHECK (event ~ '^[a-z_]+\.[a-z_.]+$'),
    sandbox_id      uuid,
    payload         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    dispatched_at   timestamptz,          -- set once deliveries were created for every endpoint
    UNIQUE (org_id, id)
);
CREATE INDEX webhook_events_pending_idx ON webhook_events (created_at) WHERE dispatched_at IS NULL;

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL,
    webhook_id      uuid NOT NULL,
    event_id        uuid NOT NULL,
    event           text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivering', 'success', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_attempt_at timestamptz,
    response_status integer,
    error           text CHECK (length(error) <= 2000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id),
    FOREIGN KEY (org_id, webhook_id) REFERENCES webhooks (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, event_id) REFERENCES webhook_events (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (org_id, webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');

-- ---------------------------------------------------------------------------------------------
-- Usage, audit, idempotency

CREATE TABLE usage_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    sandbox_id      uuid,                 -- no FK: usage outlives sandboxes
    kind            text NOT NULL CHECK (kind IN ('sandbox_seconds', 'cpu_seconds',
                        'memory_gb_seconds', 'memory_peak_bytes', 'exec_count', 'sandbox_created',
                        'network_bytes', 'storage_bytes')),
    quantity        double precision NOT NULL CHECK (quantity >= 0),
    dedup_key       text,                 -- lets a restarted aggregator insert idempotently
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, dedup_key)
);
CREATE INDEX usage_events_org_created_idx ON usage_events (org_id, created_at);

CREATE TABLE audit_logs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    request_id      text CHECK (length(request_id) <= 200),
    actor_key_id    uuid,                 -- api_keys.id (no FK: the log outlives the key)
    user_id         uuid,
    session_id      uuid,
    action          text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_.]+$'),
    resource_type   text,
    resource_id     text,
    sandbox_id      uuid,
    outcome         text NOT NULL CHECK (outcome IN ('success', 'failure')),
    error_message   text CHECK (length(error_message) <= 2000),
    details         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    duration_ms     bigint CHECK (duration_ms >= 0)
);
CREATE INDEX audit_logs_org_created_idx ON audit_logs (org_id, created_at DESC);
CREATE INDEX audit_logs_org_action_idx ON audit_logs (org_id, action, created_at DESC);
CREATE INDEX audit_logs_org_sandbox_idx ON audit_logs (org_id, sandbox_id, created_at DESC)
    WHERE sandbox_id IS NOT NULL;

CREATE TABLE idempotency_keys (
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint     text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),  -- sha256(method|path|body)
    state           text NOT NULL DEFAULT 'in_progress' CHECK (state IN ('in_progress', 'done')),
    resource_id     uuid,                 -- what the request created (reconcile after a crash)
    response_status integer CHECK (response_status BETWEEN 100 AND 599),
    response_body   text,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- ---------------------------------------------------------------------------------------------
-- updated_at triggers, RLS, grants

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['orgs', 'users', 'templates', 'sandboxes', 'webhooks',
                             'idempotency_keys'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW '
                       'EXECUTE FUNCTION sbx_touch_updated_at()', t || '_touch', t);
    END LOOP;
END
$$;

SELECT sbx_enable_tenant_rls('orgs', 'id');
SELECT sbx_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['users', 'api_keys', 'templates', 'sandboxes', 'executions', 'blobs',
                    'checkpoints', 'artifacts', 'webhooks', 'webhook_events',
                    'webhook_deliveries', 'usage_events', 'audit_logs', 'idempotency_keys']) AS t;

GRANT USAGE ON SCHEMA public TO sandboxd_app;
GRANT SELECT ON schema_migrations TO sandboxd_app;   -- /readyz compares it with the sql dir
GRANT SELECT, INSERT, UPDATE ON orgs TO sandboxd_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, api_keys, templates, sandboxes, executions,
    blobs, checkpoints, artifacts, webhooks, webhook_events, webhook_deliveries,
    idempotency_keys TO sandboxd_app;
-- append-only from the daemon's point of view
GRANT SELECT, INSERT ON usage_events, audit_logs TO sandboxd_app;
REVOKE ALL ON FUNCTION sbx_current_org() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sbx_current_org() TO sandboxd_app;
REVOKE ALL ON FUNCTION sbx_touch_updated_at() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- SECURITY DEFINER entry points for work that precedes knowing the org. They run as
-- sandboxd_owner (BYPASSRLS), have a fixed search_path, return as little as possible, and are
-- executable by sandboxd_app only.

-- API key authentication: the one row for a key id (the caller compares the hash in constant
-- time and checks expiry/revocation, then sets the org).
CREATE FUNCTION sbx_auth_key(p_key_id text)
    RETURNS TABLE (id uuid, org_id uuid, key_hash bytea, scopes text[], mode text,
                   expires_at timestamptz, revoked_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT k.id, k.org_id, k.key_hash, k.scopes, k.mode, k.expires_at, k.revoked_at
          FROM public.api_keys k
         WHERE k.key_id = p_key_id
    $$;

-- Reconciler: every sandbox that should have (or may still have) a runtime object.
CREATE FUNCTION sbx_sandboxes_active()
    RETURNS TABLE (id uuid, org_id uuid, status text, expires_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.id, s.org_id, s.status, s.expires_at
          FROM public.sandboxes s
         WHERE s.status IN ('creating', 'running', 'terminating')
         ORDER BY s.created_at
    $$;

-- Reaper: running/creating sandboxes whose deadline has passed.
CREATE FUNCTION sbx_sandboxes_expired(p_now timestamptz, p_limit integer DEFAULT 1000)
    RETURNS TABLE (id uuid, org_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.id, s.org_id
          FROM public.sandboxes s
         WHERE s.status IN ('creating', 'running')
           AND s.expires_at IS NOT NULL AND s.expires_at <= p_now
         ORDER BY s.expires_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

-- Webhook dispatcher: outbox rows not yet fanned out, and deliveries due for an attempt.
CREATE FUNCTION sbx_webhook_events_pending(p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid, org_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT e.id, e.org_id
          FROM public.webhook_events e
         WHERE e.dispatched_at IS NULL
         ORDER BY e.created_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

CREATE FUNCTION sbx_webhook_deliveries_due(p_now timestamptz, p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid, org_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT d.id, d.org_id
          FROM public.webhook_deliveries d
         WHERE d.status IN ('pending', 'delivering')
           AND d.next_attempt_at <= p_now
           AND (d.locked_until IS NULL OR d.locked_until <= p_now)
         ORDER BY d.next_attempt_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

-- Reaper: drop idempotency records older than p_before (24 h retention); returns the count.
CREATE FUNCTION sbx_idempotency_prune(p_before timestamptz)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH d AS (DELETE FROM public.idempotency_keys k
                    WHERE k.created_at < p_before
                      AND (k.state = 'done' OR k.locked_until IS NULL OR k.locked_until < p_before)
                   RETURNING 1)
        SELECT count(*) FROM d
    $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['sbx_auth_key(text)', 'sbx_sandboxes_active()',
                             'sbx_sandboxes_expired(timestamptz, integer)',
                             'sbx_webhook_events_pending(integer)',
                             'sbx_webhook_deliveries_due(timestamptz, integer)',
                             'sbx_idempotency_prune(timestamptz)'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sandboxd_app', f);
    END LOOP;
END
$$;
