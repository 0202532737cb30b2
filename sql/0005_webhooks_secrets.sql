-- 0005_webhooks_secrets.sql — webhook delivery bookkeeping, encrypted secrets and their
-- injection into sandboxes, org-private templates made from checkpoints, resource alerts.
-- See docs/internals/WEBHOOKS.md and docs/internals/SECRETS.md.

-- ---------------------------------------------------------------------------------------------
-- Webhooks

-- webhooks.secret holds the signing secret encrypted (sbxenc:v1:<key id>:<base64>), never the
-- plain text. Endpoint health: consecutive failed deliveries, since when, why disabled.
ALTER TABLE webhooks ADD COLUMN failure_count integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0);
ALTER TABLE webhooks ADD COLUMN failing_since timestamptz;
ALTER TABLE webhooks ADD COLUMN disabled_at timestamptz;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_disabled_reason_len
    CHECK (length(disabled_reason) <= 2000);

-- The daemon instance that wrote an event (and so delivers it): daemons sharing a database
-- leave each other's outbox alone, like their sandboxes (sandboxes.runtime_ref).
ALTER TABLE webhook_events ADD COLUMN instance text;
ALTER TABLE webhook_deliveries ADD COLUMN instance text;
ALTER TABLE webhook_deliveries ADD COLUMN latency_ms integer CHECK (latency_ms >= 0);
ALTER TABLE webhook_deliveries ADD COLUMN response_snippet text
    CHECK (length(response_snippet) <= 2000);
ALTER TABLE webhook_deliveries ADD COLUMN lease_owner text;

CREATE INDEX webhook_events_instance_pending_idx ON webhook_events (instance, created_at)
    WHERE dispatched_at IS NULL;

-- Per-instance variants of the dispatcher's cross-org functions (ids and org ids only).
CREATE FUNCTION sbx_webhook_events_pending_for(p_instance text, p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid, org_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT e.id, e.org_id
          FROM public.webhook_events e
         WHERE e.dispatched_at IS NULL AND e.instance IS NOT DISTINCT FROM p_instance
         ORDER BY e.created_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

CREATE FUNCTION sbx_webhook_deliveries_due_for(p_now timestamptz, p_instance text,
                                               p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid, org_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT d.id, d.org_id
          FROM public.webhook_deliveries d
         WHERE d.status IN ('pending', 'delivering')
           AND d.next_attempt_at <= p_now
           AND (d.locked_until IS NULL OR d.locked_until <= p_now)
           AND d.instance IS NOT DISTINCT FROM p_instance
         ORDER BY d.next_attempt_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

-- ---------------------------------------------------------------------------------------------
-- Secrets: values encrypted with AES-256-GCM by the daemon (the database never sees the plain
-- text); names are environment variable names because injection exports them as such.

CREATE TABLE secrets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    value_enc       text NOT NULL CHECK (length(value_enc) <= 200000),
    key_id          text NOT NULL CHECK (key_id ~ '^[0-9a-f]{8,64}$'),
    scope           text NOT NULL DEFAULT 'sandbox' CHECK (scope IN ('sandbox', 'org')),
    allowed_sandbox_patterns text[] NOT NULL DEFAULT '{}',
    description     text CHECK (length(description) <= 2000),
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);
CREATE TRIGGER secrets_touch BEFORE UPDATE ON secrets
    FOR EACH ROW EXECUTE FUNCTION sbx_touch_updated_at();

-- Which secrets a sandbox's later commands get as environment.
CREATE TABLE sandbox_secrets (
    org_id          uuid NOT NULL,
    sandbox_id      uuid NOT NULL,
    secret_id       uuid NOT NULL,
    injected_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sandbox_id, secret_id),
    FOREIGN KEY (org_id, sandbox_id) REFERENCES sandboxes (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, secret_id) REFERENCES secrets (org_id, id) ON DELETE CASCADE
);
CREATE INDEX sandbox_secrets_org_idx ON sandbox_secrets (org_id, sandbox_id);

SELECT sbx_enable_tenant_rls('secrets');
SELECT sbx_enable_tenant_rls('sandbox_secrets');
GRANT SELECT, INSERT, UPDATE, DELETE ON secrets, sandbox_secrets TO sandboxd_app;

-- ---------------------------------------------------------------------------------------------
-- Templates promoted from checkpoints (org-private); resource alert level per sandbox.

ALTER TABLE templates ADD COLUMN checkpoint_id uuid;
ALTER TABLE templates ADD CONSTRAINT templates_checkpoint_fk FOREIGN KEY (org_id, checkpoint_id)
    REFERENCES checkpoints (org_id, id) ON DELETE CASCADE;

ALTER TABLE sandboxes ADD COLUMN resource_alert text
    CHECK (resource_alert IN ('warning', 'critical'));

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['sbx_webhook_events_pending_for(text, integer)',
                             'sbx_webhook_deliveries_due_for(timestamptz, text, integer)'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sandboxd_app', f);
    END LOOP;
END
$$;
