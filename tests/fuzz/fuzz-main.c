/*
 * fuzz-main.c — a main() for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput() once per file named on the command line (directories are read,
 * one level, in name order). Each input is copied into a buffer of exactly its size, so an
 * ASan build catches over-reads as libFuzzer would. Exits 1 if no input was found, so a
 * missing corpus does not pass silently. Used for the seed-corpus regression tests.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        abort();
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact)
        abort();
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int runs = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += run_file(argv[i]) < 0;
            runs++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, NULL);
        if (n < 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        char **names = calloc((size_t)n + 1, sizeof(*names));
        int m = 0;
        for (int j = 0; j < n; j++) {
            if (ents[j]->d_name[0] != '.') {
                size_t sz = strlen(argv[i]) + strlen(ents[j]->d_name) + 2;
                names[m] = malloc(sz);
                snprintf(names[m++], sz, "%s/%s", argv[i], ents[j]->d_name);
            }
            free(ents[j]);
        }
        free(ents);
        qsort(names, (size_t)m, sizeof(*names), cmp);
        for (int j = 0; j < m; j++) {
            errors += run_file(names[j]) < 0;
            runs++;
            free(names[j]);
        }
        free(names);
    }
    printf("%d inputs run, %d unreadable\n", runs, errors);
    return runs > 0 && errors == 0 ? 0 : 1;
}
