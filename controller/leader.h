/*
 * leader.h — leader election among replicas sharing one database (docs/internals/LEADER.md).
 *
 * With leader.enabled, a thread campaigns for a coordination.k8s.io/v1 Lease; the replica
 * holding it runs the background loops (reconciler, reaper, webhook dispatcher), every replica
 * serves the API. Each acquisition gets a new epoch (Lease spec.leaseTransitions and the
 * leader_epochs row, sql/0007_leader_epoch.sql); the loops' database connections are fenced:
 * every transaction they open checks the row still holds this replica's epoch.
 * Without leader.enabled the daemon is always the leader, there is no Lease and no fence.
 *
 * Threads: leader_init/start/stop from main(); the rest from any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct db;

/* Reads the settings and (when enabled) builds the Kubernetes client. 0 or -errno with a
 * message in err. Before any thread starts. */
int leader_init(struct app *app, char *err, size_t errlen);
/* Starts the campaign thread (nothing when disabled). */
void leader_start(struct app *app);
/* Stops campaigning and, if leader, releases the Lease (holderIdentity cleared). Call after
 * the loops stopped. */
void leader_stop(void);

/* True while this replica may run the loops: always when disabled; else while it holds the
 * Lease, its last renewal is younger than the lease duration and no fence check failed. */
bool leader_is_leader(void);
/* The epoch of the current leadership (0 when disabled or not leader). */
uint64_t leader_epoch(void);

/* Inside an open transaction on db: 0 if this replica is (still) the leader of the epoch in
 * leader_epochs (the row is locked FOR SHARE until the transaction ends), else -ESTALE and
 * this replica stops acting as leader; -EIO etc. for database errors. 0 when disabled. */
int leader_fence(struct db *db);
/* Installs leader_fence as db's begin hook, so every transaction (and autocommit statement)
 * of a background loop is fenced. No-op when disabled. */
void leader_attach(struct db *db);
