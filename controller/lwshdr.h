/*
 * lwshdr.h — copying request headers out of libwebsockets' header table, which is only
 * valid during the request's first callbacks. Event-loop thread only.
 */
#pragma once

#include <libwebsockets.h>

/* A known header (WSI_TOKEN_*) as a malloc'd string, or NULL when absent. */
char *lwshdr_dup(struct lws *wsi, enum lws_token_indexes tok);
/* A custom header by lower-case name with its colon ("x-request-id:"), or NULL. */
char *lwshdr_custom_dup(struct lws *wsi, const char *name);
