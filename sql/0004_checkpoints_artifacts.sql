-- 0004_checkpoints_artifacts.sql — content-addressed checkpoints and artifacts (issue 4).
--
-- Checkpoints: a manifest object in the blob store plus, per distinct content, one blob row
-- per org (blobs, from 0001). blobs.refcount counts the checkpoints (pending or ready) that
-- reference the content; checkpoint_blobs lists them so a pending checkpoint left behind by a
-- crash can be released. Creation increments refcounts (INSERT … ON CONFLICT DO UPDATE, which
-- row-locks the blob row) before uploading; deletion of content happens only for rows with
-- refcount 0 while holding their row lock (SELECT … FOR UPDATE), and the object is deleted
-- from the store before that transaction commits — so a concurrent creator either waits for
-- the lock and then re-inserts (and re-uploads) the row, or has already pinned it.
-- See docs/internals/CHECKPOINTS.md.

ALTER TABLE blobs
    ADD COLUMN uploaded boolean NOT NULL DEFAULT false;   -- content is known to be in the store

ALTER TABLE checkpoints
    ADD COLUMN bytes_new  bigint  NOT NULL DEFAULT 0 CHECK (bytes_new >= 0),
    ADD COLUMN files_new  integer NOT NULL DEFAULT 0 CHECK (files_new >= 0),
    ADD COLUMN store_ref  text;                          -- daemon instance that made it (reaper)
CREATE INDEX checkpoints_created_idx ON checkpoints (org_id, created_at, id) WHERE status = 'ready';
CREATE INDEX checkpoints_parent_idx ON checkpoints (org_id, parent_id);
CREATE INDEX checkpoints_pending_idx ON checkpoints (created_at) WHERE status <> 'ready';

CREATE TABLE checkpoint_blobs (
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    checkpoint_id   uuid NOT NULL,
    blob_id         uuid NOT NULL REFERENCES blobs (id) ON DELETE RESTRICT,
    PRIMARY KEY (checkpoint_id, blob_id),
    FOREIGN KEY (org_id, checkpoint_id) REFERENCES checkpoints (org_id, id) ON DELETE CASCADE
);
CREATE INDEX checkpoint_blobs_blob_idx ON checkpoint_blobs (blob_id);
SELECT sbx_enable_tenant_rls('checkpoint_blobs');
GRANT SELECT, INSERT, UPDATE, DELETE ON checkpoint_blobs TO sandboxd_app;
-- The checkpoint a sandbox's workspace descends from (created from / restored / last taken):
-- the parent of its next checkpoint.
ALTER TABLE sandboxes ADD COLUMN source_checkpoint_id uuid;

CREATE INDEX blobs_unreferenced_idx ON blobs (org_id) WHERE refcount = 0;

ALTER TABLE artifacts
    ADD COLUMN storage_key text,                          -- orgs/<org>/artifacts/<id>
    ADD COLUMN store_ref   text;
CREATE INDEX artifacts_created_idx ON artifacts (org_id, created_at, id) WHERE status = 'ready';

-- Reaper: artifacts past expires_at, and uploads that never finished (a crash mid-upload).
CREATE FUNCTION sbx_artifacts_expired(p_now timestamptz, p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid, org_id uuid, store_ref text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT a.id, a.org_id, a.store_ref
          FROM public.artifacts a
         WHERE (a.expires_at IS NOT NULL AND a.expires_at <= p_now)
            OR (a.status <> 'ready' AND a.created_at < p_now - interval '1 hour')
         ORDER BY a.expires_at NULLS LAST
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

-- Reaper: checkpoints that never became ready (crash mid-checkpoint) after p_before.
CREATE FUNCTION sbx_checkpoints_stale(p_before timestamptz, p_limit integer DEFAULT 100)
    RETURNS TABLE (id uuid, org_id uuid, store_ref text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT c.id, c.org_id, c.store_ref
          FROM public.checkpoints c
         WHERE c.status <> 'ready' AND c.created_at < p_before
         ORDER BY c.created_at
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

-- Reaper: orgs having content no checkpoint references (a failed clean-up to retry).
CREATE FUNCTION sbx_blobs_unreferenced_orgs(p_limit integer DEFAULT 100)
    RETURNS TABLE (org_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT DISTINCT b.org_id FROM public.blobs b
         WHERE b.refcount = 0 AND b.last_used_at < now() - interval '5 seconds'
         LIMIT LEAST(GREATEST(p_limit, 0), 10000)
    $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['sbx_artifacts_expired(timestamptz, integer)',
                             'sbx_checkpoints_stale(timestamptz, integer)',
                             'sbx_blobs_unreferenced_orgs(integer)'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sandboxd_app', f);
    END LOOP;
END
$$;
