/*
 * fuzz-config.c — YAML configuration from arbitrary bytes (controller/config.c).
 *
 * Checks, beyond "no crash, no leak, no UB":
 *  - a refused input leaves a one-line message and the config untouched;
 *  - an accepted input's sbx_config_dump() loads back to the same config (secrets aside);
 *  - the value parsers (size, duration, cpus) round-trip through their formatters.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/config.h"

static void check_equal(const struct sbx_config *a, const struct sbx_config *b, const char *dump)
{
    size_t n;
    const struct sbx_config_key *keys = sbx_config_schema(&n);
    for (size_t i = 0; i < n; i++) {
        const char *pa = (const char *)a + keys[i].offset, *pb = (const char *)b + keys[i].offset;
        int same;
        switch (keys[i].type) {
        case SBX_CONFIG_STRING:
            same = keys[i].secret || strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
            break;
        case SBX_CONFIG_BOOL:
            same = *(const _Bool *)pa == *(const _Bool *)pb;
            break;
        case SBX_CONFIG_UINT:
        case SBX_CONFIG_CPUS:
            same = *(const uint32_t *)pa == *(const uint32_t *)pb;
            break;
        case SBX_CONFIG_INT:
        default:
            same = memcmp(pa, pb, 8) == 0;
        }
        if (!same) {
            fprintf(stderr, "round trip changed %s; dump:\n%s\n", keys[i].path, dump);
            abort();
        }
    }
}

static void values(const uint8_t *data, size_t size)
{
    if (size > 64)
        return;
    char s[65], out[64];
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t v, w;
    uint32_t c, d;
    if (sbx_config_parse_size(s, &v) == 0) {
        sbx_config_format_size(v, out, sizeof(out));
        if (sbx_config_parse_size(out, &w) != 0 || w != v)
            abort();
    }
    if (sbx_config_parse_duration(s, &v) == 0) {
        sbx_config_format_duration(v, out, sizeof(out));
        if (sbx_config_parse_duration(out, &w) != 0 || w != v)
            abort();
    }
    if (sbx_config_parse_cpus(s, &c) == 0) {
        sbx_config_format_cpus(c, out, sizeof(out));
        if (sbx_config_parse_cpus(out, &d) != 0 || d != c)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbx_config cfg, before;
    char err[512] = "";

    values(data, size);

    sbx_config_defaults(&cfg);
    sbx_config_defaults(&before);
    int r = sbx_config_load_buffer(&cfg, "fuzz.yaml", data, size, err, sizeof(err));
    if (r < 0) {
        if (err[0] == '\0' || strchr(err, '\n')) {
            fprintf(stderr, "bad message: '%s'\n", err);
            abort();
        }
        check_equal(&cfg, &before, "(refused input changed the config)");
    } else {
        char *dump = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&dump, &n);
        if (!f)
            abort();
        sbx_config_dump(&cfg, f);
        fclose(f);
        struct sbx_config back;
        sbx_config_defaults(&back);
        r = sbx_config_load_buffer(&back, "dump", dump, n, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "dump does not load: %s\n%s\n", err, dump);
            abort();
        }
        check_equal(&cfg, &back, dump);
        sbx_config_free(&back);
        free(dump);
    }
    sbx_config_free(&before);
    sbx_config_free(&cfg);
    return 0;
}
