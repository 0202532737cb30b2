-- 0006_plans_limits_testmode.sql — rate-limit snapshots, test mode, test tenants (issue 8).
-- See docs/internals/LIMITS.md.

-- ---------------------------------------------------------------------------------------------
-- Rate limits: the shared token-bucket state. Each daemon keeps buckets in memory and merges
-- its consumption into these rows about once a second (sbx_ratelimit_sync), taking back the
-- merged level; a restarted daemon or a second replica starts from the stored level.

CREATE TABLE rate_limit_buckets (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    bucket      text NOT NULL CHECK (length(bucket) BETWEEN 1 AND 200),
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, bucket)
);
SELECT sbx_enable_tenant_rls('rate_limit_buckets');
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_buckets TO sandboxd_app;

-- Merges one daemon's consumption since its last sync into the stored buckets and returns
-- the resulting levels. Refill happens here, from updated_at, at p_rate tokens per second up
-- to p_burst. Buckets of orgs that no longer exist are skipped.
CREATE FUNCTION sbx_ratelimit_sync(p_org uuid[], p_bucket text[], p_used double precision[],
                                   p_rate double precision[], p_burst double precision[])
    RETURNS TABLE (org_id uuid, bucket text, tokens double precision)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE i integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_org, 1), 0) LOOP
        IF NOT EXISTS (SELECT 1 FROM public.orgs o WHERE o.id = p_org[i]) THEN
            CONTINUE;
        END IF;
        RETURN QUERY
        INSERT INTO public.rate_limit_buckets AS b (org_id, bucket, tokens, updated_at)
        VALUES (p_org[i], p_bucket[i], GREATEST(p_burst[i] - p_used[i], 0), now())
        ON CONFLICT ON CONSTRAINT rate_limit_buckets_pkey DO UPDATE
           SET tokens = GREATEST(LEAST(b.tokens + GREATEST(extract(epoch FROM now() - b.updated_at),
                                                           0) * p_rate[i], p_burst[i])
                                 - p_used[i], 0),
               updated_at = now()
        RETURNING b.org_id, b.bucket, b.tokens;
    END LOOP;
END
$$;

-- Reaper: buckets untouched for a day are full again anyway.
CREATE FUNCTION sbx_ratelimit_prune(p_before timestamptz)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH d AS (DELETE FROM public.rate_limit_buckets b WHERE b.updated_at < p_before
                   RETURNING 1)
        SELECT count(*) FROM d
    $$;

-- ---------------------------------------------------------------------------------------------
-- Test mode. A request made with an sk_test_ key runs with sbx.mode = 'test'; one made with a
-- live key with sbx.mode = 'live'. Rows created in a transaction are tagged from sbx.mode
-- (column defaults), and a RESTRICTIVE policy hides the other mode's rows: a test key never
-- sees or changes live sandboxes, checkpoints, artifacts, webhooks or API keys, and a live key
-- never sees test ones. Background loops set no mode and see both.

CREATE FUNCTION sbx_current_mode() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('sbx.mode', true), '') $$;
REVOKE ALL ON FUNCTION sbx_current_mode() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sbx_current_mode() TO sandboxd_app;

-- true when a row tagged `test` is visible in the current mode
CREATE FUNCTION sbx_mode_visible(p_test boolean) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT CASE public.sbx_current_mode() WHEN 'test' THEN p_test
                                                 WHEN 'live' THEN NOT p_test
                                                 ELSE true END $$;
REVOKE ALL ON FUNCTION sbx_mode_visible(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sbx_mode_visible(boolean) TO sandboxd_app;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sandboxes', 'checkpoints', 'artifacts', 'webhooks'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN test boolean NOT NULL '
                       'DEFAULT COALESCE(public.sbx_current_mode() = ''test'', false)', t);
        EXECUTE format('CREATE POLICY mode_isolation ON %I AS RESTRICTIVE '
                       'USING (public.sbx_mode_visible(test)) '
                       'WITH CHECK (public.sbx_mode_visible(test))', t);
        EXECUTE format('CREATE INDEX %I ON %I (created_at) WHERE test', t || '_test_idx', t);
    END LOOP;
END
$$;

-- API keys: a test key sees and manages test keys only; live keys manage both kinds.
CREATE POLICY mode_isolation ON api_keys AS RESTRICTIVE
    USING (public.sbx_current_mode() IS DISTINCT FROM 'test' OR mode = 'test')
    WITH CHECK (public.sbx_current_mode() IS DISTINCT FROM 'test' OR mode = 'test');

-- Usage of test sandboxes never counts toward billing: billing_status 'sandbox'.
ALTER TABLE usage_events ADD COLUMN billing_status text NOT NULL DEFAULT 'live'
    CHECK (billing_status IN ('live', 'sandbox'));
CREATE FUNCTION sbx_usage_billing_status() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF public.sbx_current_mode() = 'test' THEN
        NEW.billing_status := 'sandbox';
    ELSIF NEW.sandbox_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM public.sandboxes s WHERE s.id = NEW.sandbox_id AND s.test) THEN
        NEW.billing_status := 'sandbox';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION sbx_usage_billing_status() FROM PUBLIC;
CREATE TRIGGER usage_events_billing_status BEFORE INSERT ON usage_events
    FOR EACH ROW EXECUTE FUNCTION sbx_usage_billing_status();

-- Test tenants: organizations with an expiry, deleted with everything they own afterwards.
ALTER TABLE orgs ADD COLUMN expires_at timestamptz;
ALTER TABLE orgs ADD COLUMN test_tenant boolean NOT NULL DEFAULT false;
CREATE INDEX orgs_expires_idx ON orgs (expires_at) WHERE expires_at IS NOT NULL;

-- Admin API (operator token, no organization known yet): change a plan; create a test tenant.
CREATE FUNCTION sbx_admin_set_plan(p_org uuid, p_plan text)
    RETURNS TABLE (id uuid, name text, slug text, plan text)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE public.orgs o SET plan = p_plan WHERE o.id = p_org
        RETURNING o.id, o.name, o.slug, o.plan
    $$;

-- Reaper: test tenants past their expiry; sandboxes of an org (to stop them first); deletion.
CREATE FUNCTION sbx_orgs_expired(p_now timestamptz, p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT o.id FROM public.orgs o
         WHERE o.expires_at IS NOT NULL AND o.expires_at <= p_now
         ORDER BY o.expires_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

CREATE FUNCTION sbx_org_delete(p_org uuid)
    RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        WITH d AS (DELETE FROM public.orgs o
                    WHERE o.id = p_org AND o.expires_at IS NOT NULL AND o.expires_at <= now()
                   RETURNING 1)
        SELECT count(*) FROM d
    $$;

-- Reaper: test sandboxes, checkpoints and artifacts created before p_before (retention).
CREATE FUNCTION sbx_test_data_expired(p_before timestamptz, p_limit integer DEFAULT 100)
    RETURNS TABLE (kind text, id uuid, org_id uuid, active boolean, runtime_ref text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        (SELECT 'sandbox', s.id, s.org_id,
                s.status IN ('creating', 'running', 'terminating'), s.runtime_ref
           FROM public.sandboxes s WHERE s.test AND s.created_at < p_before
          ORDER BY s.created_at LIMIT LEAST(GREATEST(p_limit, 0), 10000))
        UNION ALL
        (SELECT 'checkpoint', c.id, c.org_id, false, NULL
           FROM public.checkpoints c WHERE c.test AND c.created_at < p_before
          ORDER BY c.created_at LIMIT LEAST(GREATEST(p_limit, 0), 10000))
        UNION ALL
        (SELECT 'artifact', a.id, a.org_id, false, NULL
           FROM public.artifacts a WHERE a.test AND a.created_at < p_before
            AND (a.expires_at IS NULL OR a.expires_at > p_before)
          ORDER BY a.created_at LIMIT LEAST(GREATEST(p_limit, 0), 10000))
    $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
            'sbx_ratelimit_sync(uuid[], text[], double precision[], double precision[], '
            'double precision[])',
            'sbx_ratelimit_prune(timestamptz)',
            'sbx_admin_set_plan(uuid, text)',
            'sbx_orgs_expired(timestamptz, integer)',
            'sbx_org_delete(uuid)',
            'sbx_test_data_expired(timestamptz, integer)'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sandboxd_app', f);
    END LOOP;
END
$$;
