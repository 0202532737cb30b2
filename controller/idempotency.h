/*
 * idempotency.h — the Idempotency-Key header on POST requests (docs/internals/LIMITS.md).
 *
 * idem_claim() runs after authentication, before the handler's transaction, in a transaction
 * of its own (so concurrent requests see the claim at once): it inserts (org, key,
 * fingerprint = sha256(method|path|body), in_progress) with INSERT … ON CONFLICT DO NOTHING.
 *   IDEM_PROCEED   the key is new (or absent): run the handler, then idem_finish()
 *   IDEM_DONE      the response is set: a replay (same key and body: the stored response,
 *                  with Idempotent-Replayed: true), 422 idempotency_key_reused (different
 *                  body), 409 idempotency_in_progress with Retry-After, or 400 for a bad key
 * idem_finish() stores the response in its own transaction (any status except 503, which
 * releases the key so that a retry runs again; streamed responses also release it).
 * Worker threads; no transaction may be open on ctx->db.
 */
#pragma once

#include "controller/app.h"

enum idem_result {
    IDEM_PROCEED,
    IDEM_DONE,
};

#define IDEM_KEY_MAX 255

/* *ret_claimed is set when idem_finish() must be called. */
enum idem_result idem_claim(struct handler_ctx *ctx, struct http_request *req,
                            struct http_response *resp, bool *ret_claimed);
void idem_finish(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp);
