/*
 * testmode.h — test-mode data housekeeping (controller/api-testmode.c), called by the reaper:
 * deletes test tenants past their expiry (stopping their sandboxes first) and test data older
 * than test_mode.retention. Reaper thread, its own connection, no transaction open.
 */
#pragma once

struct app;
struct db;

void testmode_reap(struct app *app, struct db *db);
