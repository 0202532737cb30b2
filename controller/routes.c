/*
 * routes.c — the route table: every endpoint, its method, the scope it needs and its audit
 * action. Keep docs/api/openapi.yaml in step (tests/api/test_openapi.py checks the paths).
 */
#include "controller/api.h"
#include "controller/apikey.h"

#define PUBLIC(m, p, h) { .method = (m), .pattern = (p), .auth = false, .handler = (h) }
#define READ(p, h)                                                                                \
    { .method = HTTP_GET, .pattern = (p), .auth = true, .scope = AUTH_SCOPE_READ, .handler = (h) }
#define MUTATE(m, p, scope_, action_, h)                                                          \
    { .method = (m), .pattern = (p), .auth = true, .scope = (scope_), .action = (action_),       \
      .handler = (h) }

const struct route routes[] = {
    PUBLIC(HTTP_GET, "/healthz", api_healthz),
    PUBLIC(HTTP_GET, "/readyz", api_readyz),
    PUBLIC(HTTP_GET, "/metrics", api_metrics),
    PUBLIC(HTTP_GET, "/openapi.yaml", api_openapi),
    PUBLIC(HTTP_GET, "/api/v1/openapi.yaml", api_openapi),
    PUBLIC(HTTP_POST, "/api/v1/register", api_register),

    READ("/api/v1/api-keys", api_keys_list),
    MUTATE(HTTP_POST, "/api/v1/api-keys", AUTH_SCOPE_ADMIN, "api_key.create", api_keys_create),
    MUTATE(HTTP_DELETE, "/api/v1/api-keys/:id", AUTH_SCOPE_ADMIN, "api_key.revoke",
           api_keys_delete),

    READ("/api/v1/audit", api_audit_list),

    /* Webhooks, secrets, templates (api-webhooks.c, api-secrets.c, api-templates.c). */
    READ("/api/v1/webhooks", api_webhooks_list),
    MUTATE(HTTP_POST, "/api/v1/webhooks", AUTH_SCOPE_WRITE, "webhook.create",
           api_webhooks_create),
    MUTATE(HTTP_DELETE, "/api/v1/webhooks/:id", AUTH_SCOPE_WRITE, "webhook.delete",
           api_webhooks_delete),
    { .method = HTTP_POST, .pattern = "/api/v1/webhooks/:id/test", .auth = true,
      .scope = AUTH_SCOPE_WRITE, .action = "webhook.test", .handler = api_webhooks_test,
      .long_running = true },
    READ("/api/v1/webhooks/:id/deliveries", api_webhooks_deliveries),
    READ("/api/v1/secrets", api_secrets_list),
    MUTATE(HTTP_POST, "/api/v1/secrets", AUTH_SCOPE_WRITE, "secret.create", api_secrets_create),
    MUTATE(HTTP_PUT, "/api/v1/secrets/:name", AUTH_SCOPE_WRITE, "secret.update",
           api_secrets_update),
    MUTATE(HTTP_DELETE, "/api/v1/secrets/:name", AUTH_SCOPE_WRITE, "secret.delete",
           api_secrets_delete),
    MUTATE(HTTP_POST, "/api/v1/secrets/:name/check", AUTH_SCOPE_READ, "secret.access",
           api_secrets_check),
    MUTATE(HTTP_POST, "/api/v1/sandbox/:id/secrets/inject", AUTH_SCOPE_WRITE, "secret.inject",
           api_secrets_inject),
    READ("/api/v1/templates", api_templates_list),
    READ("/api/v1/templates/:name", api_templates_get),
    MUTATE(HTTP_DELETE, "/api/v1/templates/:name", AUTH_SCOPE_WRITE, "template.delete",
           api_template_delete),

    MUTATE(HTTP_POST, "/api/v1/sandbox/create", AUTH_SCOPE_WRITE, "sandbox.create",
           api_sandbox_create),
    READ("/api/v1/sandboxes", api_sandboxes_list),
    READ("/api/v1/sandbox/:id", api_sandbox_get),
    READ("/api/v1/sandbox/:id/status", api_sandbox_status),
    MUTATE(HTTP_POST, "/api/v1/sandbox/:id/stop", AUTH_SCOPE_WRITE, "sandbox.stop",
           api_sandbox_stop),
    MUTATE(HTTP_DELETE, "/api/v1/sandbox/:id", AUTH_SCOPE_WRITE, "sandbox.delete",
           api_sandbox_delete),
    MUTATE(HTTP_POST, "/api/v1/sandbox/:id/files", AUTH_SCOPE_WRITE, "file.write",
           api_files_write),
    MUTATE(HTTP_GET, "/api/v1/sandbox/:id/files", AUTH_SCOPE_READ, "file.read", api_files_read),
    { .method = HTTP_POST, .pattern = "/api/v1/sandbox/:id/execute", .auth = true,
      .scope = AUTH_SCOPE_EXECUTE, .action = "command.execute", .handler = api_exec,
      .streams = true, .long_running = true },
    /* Upgraded requests never reach the router (stream.c); a plain GET gets 426. */
    PUBLIC(HTTP_GET, "/api/v1/sandbox/:id/exec/ws", api_exec_ws_plain),

    READ("/api/v1/usage/current", api_usage_current),
    READ("/api/v1/usage/history", api_usage_history),

    /* Operator API (X-Admin-Token, api-admin.c), test mode (api-testmode.c), audit summary. */
    PUBLIC(HTTP_PUT, "/api/v1/admin/orgs/:id/plan", api_admin_org_plan),
    PUBLIC(HTTP_POST, "/api/v1/test-tenants", api_test_tenant_create),
    MUTATE(HTTP_POST, "/api/v1/test/reset", AUTH_SCOPE_WRITE, "test.reset", api_test_reset),
    READ("/api/v1/sandbox/:id/audit/summary", api_audit_summary),

    /* Checkpoints and artifacts (api-checkpoints.c, api-artifacts.c). Moving a workspace or a
     * large file may take longer than http.request_timeout: long_running. */
#define MUTATE_LONG(m, p, scope_, action_, h)                                                     \
    { .method = (m), .pattern = (p), .auth = true, .scope = (scope_), .action = (action_),       \
      .handler = (h), .long_running = true }
    MUTATE_LONG(HTTP_POST, "/api/v1/sandbox/:id/checkpoints", AUTH_SCOPE_WRITE,
                "checkpoint.create", api_checkpoint_create),
    MUTATE_LONG(HTTP_POST, "/api/v1/sandbox/:id/checkpoints/restore", AUTH_SCOPE_WRITE,
                "checkpoint.restore", api_checkpoint_restore),
    READ("/api/v1/checkpoints", api_checkpoints_list),
    { .method = HTTP_POST, .pattern = "/api/v1/checkpoints/compare", .auth = true,
      .scope = AUTH_SCOPE_READ, .handler = api_checkpoints_compare },
    READ("/api/v1/checkpoints/:id", api_checkpoint_get),
    MUTATE(HTTP_DELETE, "/api/v1/checkpoints/:id", AUTH_SCOPE_WRITE, "checkpoint.delete",
           api_checkpoint_delete),
    MUTATE(HTTP_POST, "/api/v1/checkpoints/:id/clone", AUTH_SCOPE_WRITE, "checkpoint.clone",
           api_checkpoint_clone),
    READ("/api/v1/checkpoints/:id/tree", api_checkpoint_tree),
    MUTATE(HTTP_POST, "/api/v1/checkpoints/:id/promote", AUTH_SCOPE_WRITE, "template.promote",
           api_template_promote),
    MUTATE_LONG(HTTP_POST, "/api/v1/sandbox/:id/artifacts/upload", AUTH_SCOPE_WRITE,
                "artifact.upload", api_artifact_upload),
    MUTATE_LONG(HTTP_POST, "/api/v1/sandbox/:id/artifacts/download", AUTH_SCOPE_WRITE,
                "artifact.download", api_artifact_download),
    READ("/api/v1/artifacts", api_artifacts_list),
    READ("/api/v1/artifacts/:id", api_artifact_get),
    READ("/api/v1/artifacts/:id/url", api_artifact_url),
    MUTATE(HTTP_DELETE, "/api/v1/artifacts/:id", AUTH_SCOPE_WRITE, "artifact.delete",
           api_artifact_delete),
    /* The token is the credential (fs presigned URLs); no API key. */
    PUBLIC(HTTP_GET, "/api/v1/blobs/:token", api_blob_get),
};

const size_t n_routes = sizeof(routes) / sizeof(routes[0]);
