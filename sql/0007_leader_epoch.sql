-- 0007_leader_epoch.sql — the leader-election fence (docs/internals/LEADER.md).
--
-- One row per election (name = the Lease's name). A replica that acquires the Lease bumps
-- epoch with a compare-and-set (epoch = the value it read + 1) and then runs the background
-- loops; every transaction those loops open first reads the row FOR SHARE and gives up
-- (-ESTALE) unless it still holds that replica's epoch. The share lock makes the next
-- leader's bump wait for transactions already past the check, and everything after the bump
-- sees the new epoch, so a deposed leader's writes either committed before the bump or never.
--
-- Not tenant data: the row describes the deployment (which replica runs the loops), not an
-- organization, and no API request reads or writes it; so it has no org_id and no row-level
-- security (tests/db/test_rls.py lists it in NON_TENANT_TABLES).

CREATE TABLE leader_epochs (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 253),
    epoch       bigint NOT NULL CHECK (epoch >= 0),
    holder      text NOT NULL CHECK (length(holder) <= 256),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- SELECT … FOR SHARE needs UPDATE privilege; INSERT for the first acquisition.
GRANT SELECT, INSERT, UPDATE ON leader_epochs TO sandboxd_app;
