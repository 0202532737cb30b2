-- Several daemons may share one database (one per machine, or parallel test instances). Each
-- reconciles and reaps only the sandboxes its own runtime holds; sandboxes.runtime_ref names
-- that runtime instance (the local runtime's cgroup prefix). The cross-org functions return it
-- so the caller can filter on it.

DROP FUNCTION sbx_sandboxes_active();
CREATE FUNCTION sbx_sandboxes_active()
    RETURNS TABLE (id uuid, org_id uuid, status text, expires_at timestamptz,
                   age_seconds double precision, runtime_ref text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.id, s.org_id, s.status, s.expires_at,
               extract(epoch FROM now() - s.created_at)::double precision, s.runtime_ref
          FROM public.sandboxes s
         WHERE s.status IN ('creating', 'running', 'terminating')
         ORDER BY s.created_at
    $$;
REVOKE ALL ON FUNCTION sbx_sandboxes_active() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sbx_sandboxes_active() TO sandboxd_app;

DROP FUNCTION sbx_sandboxes_expired(timestamptz, integer);
CREATE FUNCTION sbx_sandboxes_expired(p_now timestamptz, p_limit integer DEFAULT 1000)
    RETURNS TABLE (id uuid, org_id uuid, runtime_ref text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT s.id, s.org_id, s.runtime_ref
          FROM public.sandboxes s
         WHERE s.status IN ('creating', 'running')
           AND s.expires_at IS NOT NULL AND s.expires_at <= p_now
         ORDER BY s.expires_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;
REVOKE ALL ON FUNCTION sbx_sandboxes_expired(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sbx_sandboxes_expired(timestamptz, integer) TO sandboxd_app;
