/*
 * fuzz-watch.c — the watch event-line parser (k8s/k8s-watch.c k8s_watch_parse_line).
 * Checks beyond "no crash, no leak, no UB": a refused line leaves a message and no tree; an
 * accepted one has a known type and an object.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct k8s_watch_event ev;
    yajl_val tree = NULL;
    char err[256] = "";
    int r = k8s_watch_parse_line((const char *)data, size, &ev, &tree, err, sizeof err);
    if (r < 0) {
        if (tree || !err[0])
            abort();
        return 0;
    }
    if (!tree || !ev.object || !YAJL_IS_OBJECT(ev.object) || ev.type > K8S_WATCH_ERROR ||
        !strcmp(k8s_watch_type_name(ev.type), "UNKNOWN"))
        abort();
    (void)k8s_obj_name(ev.object);
    (void)k8s_obj_uid(ev.object);
    yajl_tree_free(tree);
    return 0;
}
