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

{{- define "hanshu.gateway.fullname" -}}
{{- printf "%s-gateway" (include "hanshu.fullname" .) | trunc 63 | trimSuffix "-" }}
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
