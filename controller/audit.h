/*
 * audit.h — the audit log: one record per mutating call (actor key, action, target, outcome,
 * request id, time). Worker threads only.
 */
#pragma once

#include <stdbool.h>

#include "controller/app.h"

/* Writes the record for req/resp. in_tx: inside the request's open transaction (success path);
 * otherwise it opens its own transaction for req->who.org_id. Returns 0 or -errno. A failure
 * outside the request transaction is logged and otherwise ignored. */
int audit_write(struct handler_ctx *ctx, const struct http_request *req,
                const struct http_response *resp, bool in_tx);
/* Variant for callers that know the org without an authenticated key (registration). */
int audit_write_org(struct handler_ctx *ctx, const char *org_id, const struct http_request *req,
                    const struct http_response *resp);
