-- Sandbox lifecycle additions: soft deletion (DELETE keeps the row for usage and audit but
-- hides it from the API), the last usage sample taken (so metering is incremental and
-- idempotent across restarts), and an index for the per-org concurrency count.

ALTER TABLE sandboxes ADD COLUMN deleted_at timestamptz;
ALTER TABLE sandboxes ADD COLUMN metered_until timestamptz;
ALTER TABLE sandboxes ADD COLUMN metered_cpu_usec bigint NOT NULL DEFAULT 0
    CHECK (metered_cpu_usec >= 0);
ALTER TABLE sandboxes ADD COLUMN memory_peak_bytes bigint NOT NULL DEFAULT 0
    CHECK (memory_peak_bytes >= 0);

CREATE INDEX sandboxes_org_active_idx ON sandboxes (org_id)
    WHERE status IN ('creating', 'running', 'terminating');

-- The reconciler needs each active sandbox's age (a 'creating' row is only stale after a grace
-- period) and its deletion mark.
DROP FUNCTION sbx_sandboxes_active();
CREATE FUNCTION sbx_sandboxes_active()
    RETURNS TABLE (id uuid, org_id uuid, status text, expires_at timestamptz,
                   age_seconds double precision)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.id, s.org_id, s.status, s.expires_at,
               extract(epoch FROM now() - s.created_at)::double precision
          FROM public.sandboxes s
         WHERE s.status IN ('creating', 'running', 'terminating')
         ORDER BY s.created_at
    $$;
REVOKE ALL ON FUNCTION sbx_sandboxes_active() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sbx_sandboxes_active() TO sandboxd_app;
