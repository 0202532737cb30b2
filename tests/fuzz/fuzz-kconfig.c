/*
 * fuzz-kconfig.c — kubeconfig parsing (k8s/kconfig.c) from arbitrary bytes.
 * Checks beyond "no crash, no leak, no UB": a refused input leaves a one-line message and no
 * config; an accepted one has an http(s) server and a namespace.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct k8s_config *c = NULL;
    char err[512] = "";
    /* basedir /nonexistent: file references fail cleanly instead of reading the host */
    int r = k8s_config_parse_kubeconfig((const char *)data, size, "/nonexistent", NULL, &c, err,
                                        sizeof err);
    if (r < 0) {
        if (c || !err[0] || strchr(err, '\n'))
            abort();
        return 0;
    }
    if (!c || strncmp(k8s_config_server(c), "http", 4) != 0 || !k8s_config_namespace(c))
        abort();
    free(k8s_config_token(c));
    k8s_config_free(c);
    return 0;
}
