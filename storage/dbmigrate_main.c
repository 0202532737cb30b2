/*
 * dbmigrate — apply sandboxd's SQL migrations: `dbmigrate OWNER_CONNINFO SQL_DIR`.
 * Exit 0 on success (prints how many files were applied), 1 on failure (the reason, naming the
 * failing file, on stderr), 2 on bad usage. `dbmigrate --check CONNINFO SQL_DIR` exits 0 if the
 * database is current, 3 if migrations are pending.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "storage/db.h"

int main(int argc, char **argv)
{
    char err[1024] = "";
    int r;

    if (argc == 4 && strcmp(argv[1], "--check") == 0) {
        _cleanup_db_ struct db *db = NULL;
        r = db_open(argv[2], &db, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "dbmigrate: %s\n", err);
            return 1;
        }
        r = db_migrations_current(db, argv[3]);
        if (r == 0) {
            printf("dbmigrate: database is current\n");
            return 0;
        }
        fprintf(stderr, "dbmigrate: %s\n",
                r == -ESTALE ? "migrations pending or changed" : strerror(-r));
        return r == -ESTALE ? 3 : 1;
    }
    if (argc != 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: dbmigrate OWNER_CONNINFO SQL_DIR\n"
                        "       dbmigrate --check CONNINFO SQL_DIR\n");
        return 2;
    }
    r = db_migrate(argv[1], argv[2], err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "dbmigrate: %s\n", err[0] ? err : strerror(-r));
        return 1;
    }
    printf("dbmigrate: %d migration(s) applied\n", r);
    return 0;
}
