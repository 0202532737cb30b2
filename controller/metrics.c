/*
 * metrics.c — in-process Prometheus metrics (see metrics.h).
 *
 * DESIGN: a fixed-size open table of series keyed by (route, method, status). Route and method
 * strings are static (from the route table), so they are compared by pointer first. When the
 * table is full, further series are counted under route="other". Histogram buckets are fixed.
 */
#include "controller/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 512
#define MAX_GAUGES 32

static const double bucket_le[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1.0,  2.5,   5.0,  10.0 };
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

struct series {
    const char *route;
    const char *method;
    int status;
    uint64_t count;
    double sum_s;
    uint64_t buckets[N_BUCKETS];
};

struct gauge {
    const char *name;
    const char *help;
    double value;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series table[MAX_SERIES];
static size_t n_series;
static struct gauge gauges[MAX_GAUGES];
static size_t n_gauges;

static struct series *find(const char *route, const char *method, int status)
{
    for (size_t i = 0; i < n_series; i++) {
        struct series *s = &table[i];
        if (s->status == status && (s->route == route || strcmp(s->route, route) == 0) &&
            (s->method == method || strcmp(s->method, method) == 0))
            return s;
    }
    if (n_series == MAX_SERIES)
        return find("other", "other", 0);
    table[n_series] = (struct series){ .route = route, .method = method, .status = status };
    return &table[n_series++];
}

void metrics_observe(const char *route, const char *method, int status, uint64_t duration_us)
{
    double s = (double)duration_us / 1e6;
    pthread_mutex_lock(&lock);
    struct series *se = find(route, method, status);
    se->count++;
    se->sum_s += s;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (s <= bucket_le[i])
            se->buckets[i]++;
    pthread_mutex_unlock(&lock);
}

void metrics_gauge_set(const char *name, const char *help, double value)
{
    pthread_mutex_lock(&lock);
    size_t i;
    for (i = 0; i < n_gauges; i++)
        if (strcmp(gauges[i].name, name) == 0)
            break;
    if (i == n_gauges && n_gauges < MAX_GAUGES)
        gauges[n_gauges++] = (struct gauge){ .name = name, .help = help };
    if (i < n_gauges)
        gauges[i].value = value;
    pthread_mutex_unlock(&lock);
}

int metrics_render(struct sbx_buf *out)
{
    int r = 0;
    pthread_mutex_lock(&lock);
    r |= sbx_buf_puts(out, "# HELP sandboxd_http_requests_total HTTP requests served.\n"
                           "# TYPE sandboxd_http_requests_total counter\n");
    for (size_t i = 0; i < n_series; i++)
        r |= sbx_buf_printf(out,
                            "sandboxd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"}"
                            " %llu\n",
                            table[i].route, table[i].method, table[i].status,
                            (unsigned long long)table[i].count);
    r |= sbx_buf_puts(out,
                      "# HELP sandboxd_http_request_duration_seconds HTTP request latency.\n"
                      "# TYPE sandboxd_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < n_series; i++) {
        const struct series *s = &table[i];
        char labels[256];
        snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%d\"", s->route,
                 s->method, s->status);
        for (size_t b = 0; b < N_BUCKETS; b++)
            r |= sbx_buf_printf(out,
                                "sandboxd_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
                                labels, bucket_le[b], (unsigned long long)s->buckets[b]);
        r |= sbx_buf_printf(out,
                            "sandboxd_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n"
                            "sandboxd_http_request_duration_seconds_sum{%s} %.6f\n"
                            "sandboxd_http_request_duration_seconds_count{%s} %llu\n",
                            labels, (unsigned long long)s->count, labels, s->sum_s, labels,
                            (unsigned long long)s->count);
    }
    for (size_t i = 0; i < n_gauges; i++)
        r |= sbx_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", gauges[i].name,
                            gauges[i].help, gauges[i].name, gauges[i].name, gauges[i].value);
    pthread_mutex_unlock(&lock);
    return r < 0 ? -E2BIG : 0;
}
