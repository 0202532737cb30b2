{{/* Chart name. */}}
{{- define "sandboxd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-sandboxd unless the release name already contains it. */}}
{{- define "sandboxd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sandboxd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sandboxd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sandboxd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sandboxd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sandboxd
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Namespace of the sandbox pods. */}}
{{- define "sandboxd.sandboxNamespace" -}}
{{- default (printf "%s-sandboxes" .Release.Namespace) .Values.sandboxNamespace.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sandboxd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sandboxd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sandboxd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Secret holding database.url / database.migrate_url. */}}
{{- define "sandboxd.databaseSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "sandboxd.fullname" .) -}}
{{- else -}}
{{- required "existingSecrets.database.name is required (or postgresql.enabled for evaluation)" .Values.existingSecrets.database.name -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context of the restricted profile (uid 10001 as in the Containerfile). */}}
{{- define "sandboxd.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context of the restricted profile plus a read-only root file system. */}}
{{- define "sandboxd.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* SANDBOXD_* variables from Secrets (database, encryption key, admin token, S3). */}}
{{- define "sandboxd.secretEnv" -}}
- name: SANDBOXD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "sandboxd.databaseSecret" . }}
      key: {{ .Values.postgresql.enabled | ternary "url" .Values.existingSecrets.database.urlKey }}
- name: SANDBOXD_DATABASE_MIGRATE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "sandboxd.databaseSecret" . }}
      key: {{ .Values.postgresql.enabled | ternary "migrate-url" .Values.existingSecrets.database.migrateUrlKey }}
- name: SANDBOXD_SECRETS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "existingSecrets.encryptionKey.name is required: every replica must share secrets.key" .Values.existingSecrets.encryptionKey.name }}
      key: {{ .Values.existingSecrets.encryptionKey.key }}
{{- with .Values.existingSecrets.encryptionKey.previousKeysKey }}
- name: SANDBOXD_SECRETS_PREVIOUS_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecrets.encryptionKey.name }}
      key: {{ . }}
{{- end }}
{{- with .Values.existingSecrets.adminToken.name }}
- name: SANDBOXD_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.existingSecrets.adminToken.key }}
{{- end }}
{{- if .Values.s3Store.enabled }}
- name: SANDBOXD_STORAGE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "sandboxd.fullname" . }}-s3store
      key: access-key-id
- name: SANDBOXD_STORAGE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "sandboxd.fullname" . }}-s3store
      key: secret-access-key
{{- else if .Values.existingSecrets.s3.name }}
- name: SANDBOXD_STORAGE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecrets.s3.name }}
      key: {{ .Values.existingSecrets.s3.accessKeyIdKey }}
- name: SANDBOXD_STORAGE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.existingSecrets.s3.name }}
      key: {{ .Values.existingSecrets.s3.secretAccessKeyKey }}
{{- with .Values.existingSecrets.s3.sessionTokenKey }}
- name: SANDBOXD_STORAGE_S3_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecrets.s3.name }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end -}}
