/*
 * api.h — the REST handlers, one file per resource (api-*.c). Every handler runs on a worker
 * thread with the request's organization transaction open (authenticated routes) and fills
 * the response; it never touches libwebsockets.
 */
#pragma once

#include "controller/app.h"

/* Shared by the file and artifact handlers (api-files.c): maps a runtime file-operation error
 * (-EINVAL/-EXDEV/-ELOOP invalid_path, -ENOENT, -EISDIR, -EACCES, -EFBIG, -ENOSPC, ...) to the
 * response; and the lexical path check (400 invalid_path, returns -EINVAL). */
void api_file_error(struct http_response *resp, int r, const char *path);
int api_check_path(const char *path, struct http_response *resp);

#define API_HANDLER(name)                                                                         \
    void name(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp)

API_HANDLER(api_healthz);
API_HANDLER(api_readyz);
API_HANDLER(api_metrics);
API_HANDLER(api_openapi);
API_HANDLER(api_register);
API_HANDLER(api_keys_list);
API_HANDLER(api_keys_create);
API_HANDLER(api_keys_delete);
API_HANDLER(api_webhooks_create);
API_HANDLER(api_webhooks_list);
API_HANDLER(api_webhooks_delete);
API_HANDLER(api_webhooks_test);
API_HANDLER(api_webhooks_deliveries);
API_HANDLER(api_secrets_create);
API_HANDLER(api_secrets_list);
API_HANDLER(api_secrets_update);
API_HANDLER(api_secrets_delete);
API_HANDLER(api_secrets_check);
API_HANDLER(api_secrets_inject);
API_HANDLER(api_templates_list);
API_HANDLER(api_templates_get);
API_HANDLER(api_template_promote);
API_HANDLER(api_template_delete);
API_HANDLER(api_audit_list);
API_HANDLER(api_sandbox_create);
API_HANDLER(api_sandbox_get);
API_HANDLER(api_sandbox_status);
API_HANDLER(api_sandboxes_list);
API_HANDLER(api_sandbox_stop);
API_HANDLER(api_sandbox_delete);
API_HANDLER(api_files_write);
API_HANDLER(api_files_read);
API_HANDLER(api_exec);
API_HANDLER(api_exec_ws_plain);
API_HANDLER(api_usage_current);
API_HANDLER(api_usage_history);
/* Plans, admin, test mode, audit summary (issue 8). */
API_HANDLER(api_admin_org_plan);
API_HANDLER(api_test_tenant_create);
API_HANDLER(api_test_reset);
API_HANDLER(api_audit_summary);
API_HANDLER(api_checkpoint_create);
API_HANDLER(api_checkpoint_restore);
API_HANDLER(api_checkpoints_list);
API_HANDLER(api_checkpoint_get);
API_HANDLER(api_checkpoint_delete);
API_HANDLER(api_checkpoint_clone);
API_HANDLER(api_checkpoints_compare);
API_HANDLER(api_checkpoint_tree);
API_HANDLER(api_artifact_upload);
API_HANDLER(api_artifact_download);
API_HANDLER(api_artifacts_list);
API_HANDLER(api_artifact_get);
API_HANDLER(api_artifact_url);
API_HANDLER(api_artifact_delete);
API_HANDLER(api_blob_get);
