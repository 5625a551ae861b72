{{/* Names and labels, after `helm create`. */}}
{{- define "hanshu.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hanshu.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "hanshu.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hanshu.labels" -}}
helm.sh/chart: {{ include "hanshu.chart" . }}
app.kubernetes.io/name: {{ include "hanshu.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hanshu
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "gateway"). */}}
{{- define "hanshu.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hanshu.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hanshu.operator.fullname" -}}
{{- printf "%s-operator" (include "hanshu.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hanshu.autoscaler.fullname" -}}
{{- printf "%s-autoscaler" (include "hanshu.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where gateways, dispatchers and the operator (stream lag) report: the autoscaler's Service. */}}
{{- define "hanshu.autoscalerUrl" -}}
{{- printf "http://%s.%s.svc:8090" (include "hanshu.autoscaler.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "hanshu.gateway.fullname" -}}
{{- printf "%s-gateway" (include "hanshu.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hanshu.dispatcher.fullname" -}}
{{- printf "%s-dispatcher" (include "hanshu.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hanshu.nats.fullname" -}}
{{- printf "%s-nats" (include "hanshu.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Where the gateway and the dispatcher find NATS: the bundled server, an existing one
(nats.url), or "" (async invocation off: the gateway answers 503 AsyncNotEnabled and no
dispatcher runs). Both at once is refused: which one holds the events must be unambiguous.
*/}}
{{- define "hanshu.natsUrl" -}}
{{- if and .Values.nats.enabled .Values.nats.url }}
{{- fail "nats.enabled=true runs the chart's own NATS; to use nats.url, set nats.enabled=false too" }}
{{- end }}
{{- if and .Values.nats.enabled (ne (int .Values.nats.replicas) 1) }}
{{- fail "nats.replicas must be 1 with the bundled one-node NATS (3 needs a three-node cluster: nats.enabled=false, nats.url)" }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc:4222" (include "hanshu.nats.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.nats.url }}
{{- end }}
{{- end }}

{{/* The client port of nats.url (4222 when it names none), for the dispatcher's egress. */}}
{{- define "hanshu.natsPort" -}}
{{- $host := (urlParse .Values.nats.url).host -}}
{{- $parts := splitList ":" $host -}}
{{- if gt (len $parts) 1 }}{{ last $parts }}{{ else }}4222{{ end }}
{{- end }}

{{/* An image reference: call with (dict "root" $ "image" .Values.image.gateway). */}}
{{- define "hanshu.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if $registry }}{{ printf "%s/%s:%s" $registry .image.repository $tag }}{{ else }}{{ printf "%s:%s" .image.repository $tag }}{{ end }}
{{- end }}

{{/* The restricted Pod Security Standard, for every pod and container of the chart. */}}
{{- define "hanshu.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "hanshu.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "hanshu.gatewayPublicUrl" -}}
{{- if .Values.gateway.publicUrl }}{{ .Values.gateway.publicUrl }}{{ else }}{{ printf "http://%s.%s.svc" (include "hanshu.gateway.fullname" .) .Release.Namespace }}{{ end }}
{{- end }}

{{/* The bundled NATS server's configuration (nats.yaml): its ConfigMap and its checksum. */}}
{{- define "hanshu.natsConfig" -}}
server_name: $POD_NAME
port: 4222
# Monitoring: the probes' /healthz (and /varz, /jsz for people).
http_port: 8222
# An async event is stored whole, up to the gateway's body limit (6 MiB by default).
max_payload: 8MB
# On shutdown, clients are moved off gently before the server stops.
lame_duck_grace_period: 10s
lame_duck_duration: 30s
pid_file: /var/run/nats/nats.pid
jetstream {
  # nats-server keeps its files in <store_dir>/jetstream on the volume.
  store_dir: /data
  max_memory_store: {{ .Values.nats.jetstream.maxMemoryStore }}
  {{- with .Values.nats.jetstream.maxFileStore }}
  max_file_store: {{ . }}
  {{- end }}
}
{{- end }}

{{/* The warm pool's settings, read alike by the operator and the gateway. */}}
{{- define "hanshu.warmPoolEnv" -}}
{{- $pools := dict }}
{{- if .Values.warmPool.enabled }}{{ $pools = .Values.warmPool.namespaces }}{{ end }}
{{- if and $pools .Values.watchNamespaces }}
{{- range $namespace, $size := $pools }}
{{- if not (has $namespace $.Values.watchNamespaces) }}
{{- fail (printf "warmPool.namespaces has %s, which watchNamespaces does not list: a pool's Functions must be watched; add it to watchNamespaces" $namespace) }}
{{- end }}
{{- end }}
{{- end }}
- name: HANSHU_WARM_POOLS
  value: {{ ternary (toJson $pools) "" (not (empty $pools)) | quote }}
- name: HANSHU_WARM_POOL_RESOURCES
  value: {{ ternary (toJson .Values.warmPool.resources) "" (not (empty .Values.warmPool.resources)) | quote }}
{{- end }}

{{/* The namespaces with a warm pool (empty when it is off). */}}
{{- define "hanshu.warmPoolNamespaces" -}}
{{- if .Values.warmPool.enabled }}{{ join "," (keys .Values.warmPool.namespaces | sortAlpha) }}{{ end }}
{{- end }}
