{{/* The release's name for every object: the release name, or "<release>-wizbrand". */}}
{{- define "wizbrand.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wizbrand.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The server's pods (not the migration Job's): what the Services and the PDB select. */}}
{{- define "wizbrand.serverSelectorLabels" -}}
{{ include "wizbrand.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "wizbrand.labels" -}}
{{ include "wizbrand.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wizbrand.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The public Service's in-cluster URL. */}}
{{- define "wizbrand.serviceUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "wizbrand.fullname" .) .Release.Namespace .Values.ports.http -}}
{{- end -}}

{{/* A secret from the existing Secret, never a value. */}}
{{- define "wizbrand.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* The environment of every wizbrand container (server, migration Job, init container). */}}
{{- define "wizbrand.env" -}}
{{- $secret := required "secrets.existingSecret: name the Secret holding wizbrand's secrets" .Values.secrets.existingSecret -}}
- name: WIZBRAND_LISTEN
  value: {{ printf "0.0.0.0:%v" .Values.ports.http | quote }}
- name: WIZBRAND_OPS_LISTEN
  value: {{ printf "0.0.0.0:%v" .Values.ports.ops | quote }}
- name: WIZBRAND_PUBLIC_URL
  value: {{ required "publicUrl is required" .Values.publicUrl | quote }}
- name: WIZBRAND_COOKIE_DOMAIN
  value: {{ required "cookieDomain is required" .Values.cookieDomain | quote }}
- name: KEYCLOAK_URL
  value: {{ required "keycloak.url is required" .Values.keycloak.url | quote }}
{{- with .Values.keycloak.internalUrl }}
- name: KEYCLOAK_INTERNAL_URL
  value: {{ . | quote }}
{{- end }}
- name: KEYCLOAK_REALM
  value: {{ .Values.keycloak.realm | quote }}
- name: WIZBRAND_OIDC_CLIENT_ID
  value: {{ .Values.keycloak.webClientId | quote }}
- name: WIZBRAND_SYNC_CLIENT_ID
  value: {{ .Values.keycloak.syncClientId | quote }}
- name: WIZBRAND_TRUSTED_PROXIES
  value: {{ .Values.trustedProxies | quote }}
- name: WIZBRAND_SYNC_ENABLED
  value: {{ .Values.sync.enabled | quote }}
- name: WIZBRAND_SYNC_CRON
  value: {{ .Values.sync.cron | quote }}
- name: WIZBRAND_MIGRATE_ON_START
  value: "false"
- name: WIZBRAND_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.logFilter | quote }}
{{ include "wizbrand.secretEnv" (dict "name" "DATABASE_URL" "secret" $secret "key" .Values.secrets.keys.databaseUrl) }}
{{ include "wizbrand.secretEnv" (dict "name" "WIZBRAND_SESSION_KEY" "secret" $secret "key" .Values.secrets.keys.sessionKey) }}
{{ include "wizbrand.secretEnv" (dict "name" "WIZBRAND_SESSION_KEYS_PREVIOUS" "secret" $secret "key" .Values.secrets.keys.previousSessionKeys "optional" true) }}
{{ include "wizbrand.secretEnv" (dict "name" "WIZBRAND_OIDC_CLIENT_SECRET" "secret" $secret "key" .Values.secrets.keys.oidcClientSecret) }}
{{ include "wizbrand.secretEnv" (dict "name" "WIZBRAND_SYNC_CLIENT_SECRET" "secret" $secret "key" .Values.secrets.keys.syncClientSecret) }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* `wizbrand migrate` as a container: the hook Job's and the init container's. */}}
{{- define "wizbrand.migrateContainer" -}}
name: migrate
image: {{ include "wizbrand.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: [migrate]
env:
{{ include "wizbrand.env" . | indent 2 }}
securityContext:
{{ toYaml .Values.securityContext | indent 2 }}
resources:
{{ toYaml .Values.resources | indent 2 }}
{{- end -}}
