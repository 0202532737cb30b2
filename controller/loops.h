/*
 * loops.h — the background loops: the reaper (expiry, periodic usage metering) and the
 * reconciler (database rows vs. what the runtime actually has). Each runs on its own thread
 * with its own database connection; both are idempotent and restart-safe.
 */
#pragma once

struct app;
struct db;

/* Starts both loops. Call after the runtime started (threads exist from here on). */
void loops_start(struct app *app);
/* Wakes and joins them (called during shutdown, after the server stopped). */
void loops_stop(void);
/* One reconciler pass, synchronously (also used at start-up before serving). */
void reconcile_once(struct app *app, struct db *db);
