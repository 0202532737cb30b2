/*
 * metrics.h — Prometheus counters and latency histograms, by route, method and status.
 *
 * metrics_observe() is called once per finished request from the event-loop thread; the
 * rendering for GET /metrics runs on a worker. A mutex guards the table (uncontended: one
 * writer). Route labels come from the static route table, so the label set is bounded.
 */
#pragma once

#include <stdint.h>

#include "common/buf.h"

void metrics_observe(const char *route, const char *method, int status, uint64_t duration_us);
/* Gauges set by other modules (e.g. sandboxes by state); name must be a static string. */
void metrics_gauge_set(const char *name, const char *help, double value);
/* Renders the text exposition format (version 0.0.4) into out. */
int metrics_render(struct sbx_buf *out);
