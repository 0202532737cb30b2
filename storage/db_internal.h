/* db_internal.h — shared between storage/db.c and storage/dbmigrate.c; not a public API. */
#pragma once

#include <libpq-fe.h>
#include <stdbool.h>

#include "storage/db.h"

struct db {
    PGconn *conn;
    char *conninfo;
    bool in_tx;
    int tx_error;           /* first error inside the open transaction, 0 if none */
    struct db_error err;
    db_begin_hook_t begin_hook; /* db_set_begin_hook(); NULL = none */
    void *begin_hook_arg;
    bool in_hook;
};

/* Records the error carried by res (or the connection's, if res is NULL) and returns the
 * mapped -errno; a broken connection always maps to -EIO. */
int db_record_error(struct db *db, const PGresult *res);
/* Reconnects if the connection is bad. 0 or -EIO. */
int db_ensure_connected(struct db *db);
/* Copies a one-line version of s into dst (newlines → spaces), truncating. */
void db_oneline(char *dst, size_t dstlen, const char *s);
