{{/* The chart's name, or nameOverride. */}}
{{- define "dockroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects (63 characters at most: a DNS label). */}}
{{- define "dockroute.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dockroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dockroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dockroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dockroute.labels" -}}
helm.sh/chart: {{ include "dockroute.chart" . }}
{{ include "dockroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dockroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dockroute.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dockroute.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the ConfigMap is mounted, and the files in it. */}}
{{- define "dockroute.configDir" -}}/etc/dockroute{{- end }}
{{- define "dockroute.dynamicFile" -}}/etc/dockroute/dynamic/dynamic.yaml{{- end }}

{{/*
The static configuration (Traefik's static format, read by `dockroute --configFile`): the entry points,
the file provider for `dynamic`, ping on the traefik entry point (the probes), log, access log and
metrics; `staticConfig` is merged over it. No Kubernetes provider: dockroute does not have one yet.
*/}}
{{- define "dockroute.staticConfig" -}}
{{- $p := .Values.ports }}
{{- $web := dict "address" (printf ":%d" (int $p.web.port)) }}
{{- if $p.web.redirectTo }}
{{- $_ := set $web "http" (dict "redirections" (dict "entryPoint" (dict "to" $p.web.redirectTo "scheme" "https"))) }}
{{- end }}
{{- $websecure := dict "address" (printf ":%d" (int $p.websecure.port)) }}
{{- if $p.websecure.tls.enabled }}
{{- $tls := dict }}
{{- if $p.websecure.tls.certResolver }}
{{- $_ := set $tls "certResolver" $p.websecure.tls.certResolver }}
{{- end }}
{{- $_ := set $websecure "http" (dict "tls" $tls) }}
{{- end }}
{{- $entryPoints := dict "web" $web "websecure" $websecure "traefik" (dict "address" (printf ":%d" (int $p.traefik.port))) }}
{{- $static := dict "entryPoints" $entryPoints }}
{{- $_ := set $static "providers" (dict "file" (dict "filename" (include "dockroute.dynamicFile" .) "watch" true)) }}
{{- $_ := set $static "ping" (dict "entryPoint" "traefik") }}
{{- $_ := set $static "log" (dict "level" .Values.logLevel) }}
{{- if .Values.accessLog }}
{{- $_ := set $static "accessLog" (dict) }}
{{- end }}
{{- if .Values.metrics.prometheus.enabled }}
{{- $_ := set $static "metrics" (dict "prometheus" (dict "entryPoint" "traefik")) }}
{{- end }}
{{- toYaml (mustMergeOverwrite $static (deepCopy (default (dict) .Values.staticConfig))) }}
{{- end }}
