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
Whether the replicas share their ACME certificates through a Secret (and pick the orderer with Leases):
"true" or "". `sharedCertificates.enabled: auto` turns it on when there is an ACME resolver and more than
one pod (a Deployment with replicas > 1, or a DaemonSet: one pod per node).
*/}}
{{- define "dockroute.sharedCertificates" -}}
{{- $on := .Values.sharedCertificates.enabled }}
{{- if eq (toString $on) "auto" }}
{{- $acme := false }}
{{- range $name, $r := (default (dict) .Values.staticConfig.certificatesResolvers) }}
{{- if and (kindIs "map" $r) (hasKey $r "acme") }}{{ $acme = true }}{{ end }}
{{- end }}
{{- $on = and $acme (or (eq .Values.kind "DaemonSet") (gt (int .Values.replicas) 1)) }}
{{- else if not (kindIs "bool" $on) }}
{{- fail (printf "sharedCertificates.enabled must be auto, true or false, not %v" $on) }}
{{- end }}
{{- if $on }}true{{ end }}
{{- end }}

{{/* The Secret holding acme.json when the certificates are shared. */}}
{{- define "dockroute.certificatesSecret" -}}
{{- default (printf "%s-acme" (include "dockroute.fullname" .)) .Values.sharedCertificates.secretName | trunc 253 }}
{{- end }}

{{/*
Whether the chart creates the PersistentVolumeClaim for /data: one ReadWriteOnce claim serves one pod, so
not for a DaemonSet, and not when the certificates live in the Secret (several pods, nothing to keep).
*/}}
{{- define "dockroute.createsClaim" -}}
{{- if and .Values.persistence.enabled (not .Values.persistence.existingClaim) (eq .Values.kind "Deployment") (not (include "dockroute.sharedCertificates" .)) }}true{{ end }}
{{- end }}

{{/* Whether the pod talks to the Kubernetes API at all (then it gets a service account token). */}}
{{- define "dockroute.usesKubernetesApi" -}}
{{- if or .Values.providers.kubernetesIngress.enabled (include "dockroute.sharedCertificates" .) }}true{{ end }}
{{- end }}

{{/*
The static configuration (Traefik's static format, read by `dockroute --configFile`): the entry points,
the file provider for `dynamic`, the Kubernetes Ingress provider (the IngressClass's name; with a
LoadBalancer Service, the Ingress status names it), ping on the traefik entry point (the probes), log,
access log and metrics; `staticConfig` is merged over it; with shared certificates, every ACME resolver's
`storage` is the Secret.
*/}}
{{- define "dockroute.staticConfig" -}}
{{- include "dockroute.checkPorts" . }}
{{- $p := .Values.ports }}
{{- $web := dict "address" (printf ":%d" (int $p.web.port)) }}
{{- if $p.web.redirectTo }}
{{- $_ := set $web "http" (dict "redirections" (dict "entryPoint" (dict "to" $p.web.redirectTo "scheme" "https"))) }}
{{- end }}
{{- $websecure := dict "address" (printf ":%d" (int $p.websecure.port)) }}
{{- if $p.websecure.tls.enabled }}
{{- $tls := dict }}
{{- range $key := list "certResolver" "options" "domains" }}
{{- with index $p.websecure.tls $key }}{{ $_ := set $tls $key . }}{{ end }}
{{- end }}
{{- $_ := set $websecure "http" (dict "tls" $tls) }}
{{- end }}
{{- $entryPoints := dict "web" $web "websecure" $websecure "traefik" (dict "address" (printf ":%d" (int $p.traefik.port))) }}
{{- range $name := include "dockroute.extraPorts" . | fromJsonArray }}
{{- $x := index $p $name }}
{{- $_ := set $entryPoints $name (dict "address" (printf ":%d%s" (int $x.port) (eq (default "TCP" $x.protocol) "UDP" | ternary "/udp" ""))) }}
{{- end }}
{{- range $name, $x := $p }}
{{- if and (hasKey $entryPoints $name) (kindIs "bool" $x.allowACMEByPass) }}
{{- $_ := set (index $entryPoints $name) "allowACMEByPass" $x.allowACMEByPass }}
{{- end }}
{{- end }}
{{- $static := dict "entryPoints" $entryPoints }}
{{- $providers := dict "file" (dict "filename" (include "dockroute.dynamicFile" .) "watch" true) }}
{{- if .Values.providers.kubernetesIngress.enabled }}
{{- $ingress := dict "ingressClass" .Values.ingressClass.name }}
{{- if eq .Values.service.type "LoadBalancer" }}
{{- /* Each routed Ingress's status.loadBalancer gets the Service's address. */}}
{{- $_ := set $ingress "ingressEndpoint" (dict "publishedService" (printf "%s/%s" .Release.Namespace (include "dockroute.fullname" .))) }}
{{- end }}
{{- $_ := set $providers "kubernetesIngress" $ingress }}
{{- end }}
{{- $_ := set $static "providers" $providers }}
{{- $_ := set $static "ping" (dict "entryPoint" "traefik") }}
{{- $_ := set $static "log" (dict "level" .Values.logLevel) }}
{{- if .Values.accessLog }}
{{- $_ := set $static "accessLog" (dict) }}
{{- end }}
{{- if .Values.metrics.prometheus.enabled }}
{{- $_ := set $static "metrics" (dict "prometheus" (dict "entryPoint" "traefik")) }}
{{- end }}
{{- $merged := mustMergeOverwrite $static (deepCopy (default (dict) .Values.staticConfig)) }}
{{- if include "dockroute.sharedCertificates" . }}
{{- /* Every ACME resolver stores into the one Secret (acme.json holds resolvers side by side). */}}
{{- $storage := printf "kubernetes://%s/%s?leaseDuration=%ds" .Release.Namespace (include "dockroute.certificatesSecret" .) (int .Values.sharedCertificates.leaseDuration) }}
{{- range $name, $r := (default (dict) $merged.certificatesResolvers) }}
{{- if and (kindIs "map" $r) (hasKey $r "acme") }}
{{- $_ := set $r.acme "storage" $storage }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $merged }}
{{- end }}

{{/*
The keys of `ports` the chart acts on. `web`, `websecure` and `traefik` are the built-in entry points;
every other name is an extra entry point (a TCP one for `tcp.routers`, a UDP one for `udp.routers`). A key
the chart does not act on (Traefik's chart has more: `http3`, `proxyProtocol`, ...) stops the render naming
it, rather than being ignored: set those in `staticConfig.entryPoints.<name>`. A key set to null is unset.
*/}}
{{- define "dockroute.portKeys" -}}
{{- $common := list "port" "exposedPort" "protocol" "nodePort" "hostPort" "expose" "allowACMEByPass" }}
{{- $keys := dict "web" (append $common "redirectTo") "websecure" (append $common "tls") "traefik" (list "port" "exposedPort" "protocol" "hostPort" "expose") }}
{{- toJson (get $keys . | default $common) }}
{{- end }}

{{/* Whether `ports` entry `.` is in the main Service: `expose` is a bool, or Traefik's chart's
`{default: <bool>}`; unset, an extra port is. (Checked by dockroute.checkPorts.) */}}
{{- define "dockroute.exposed" -}}
{{- $e := true }}
{{- if not (kindIs "invalid" .expose) }}
{{- $e = .expose }}
{{- if kindIs "map" $e }}{{ $e = $e.default }}{{ end }}
{{- end }}
{{- if $e }}true{{ end }}
{{- end }}

{{/* Fails the render on a `ports` value the chart would not act on, naming it. */}}
{{- define "dockroute.checkPorts" -}}
{{- $builtin := list "web" "websecure" "traefik" }}
{{- $containerPorts := dict }}
{{- $servicePorts := dict }}
{{- range $name, $p := .Values.ports }}
{{- if not (kindIs "map" $p) }}
{{- fail (printf "ports.%s must be a map (port, exposedPort, ...), not %v" $name $p) }}
{{- end }}
{{- $allowed := include "dockroute.portKeys" $name | fromJsonArray }}
{{- range $key, $v := $p }}
{{- if and (not (kindIs "invalid" $v)) (not (has $key $allowed)) }}
{{- fail (printf "ports.%s.%s is not supported by this chart (its keys: %s); set it in staticConfig.entryPoints.%s" $name $key (join ", " $allowed) $name) }}
{{- end }}
{{- end }}
{{- if not (kindIs "invalid" $p.expose) }}
{{- $e := $p.expose }}
{{- if kindIs "map" $e }}
{{- range $key, $_ := $e }}
{{- if ne $key "default" }}
{{- fail (printf "ports.%s.expose.%s is not supported by this chart (only expose.default, or expose: true/false)" $name $key) }}
{{- end }}
{{- end }}
{{- $e = $e.default }}
{{- end }}
{{- if not (kindIs "bool" $e) }}
{{- fail (printf "ports.%s.expose must be true or false (or {default: true/false}), not %v" $name $e) }}
{{- end }}
{{- if and (eq $name "traefik") $e }}
{{- fail "ports.traefik.expose: the traefik entry point (ping, metrics, the API) is never in the main Service" }}
{{- end }}
{{- end }}
{{- $protocol := default "TCP" $p.protocol }}
{{- if has $name $builtin }}
{{- if ne $protocol "TCP" }}
{{- fail (printf "ports.%s.protocol must be TCP (it serves HTTP), not %v" $name $protocol) }}
{{- end }}
{{- else }}
{{- if not (and (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) (regexMatch "[a-z]" $name) (not (contains "--" $name))) }}
{{- fail (printf "ports.%s: the name must be lowercase letters, digits and single '-', with at least one letter (a Kubernetes port name)" $name) }}
{{- end }}
{{- if gt (len $name) 15 }}
{{- fail (printf "ports.%s: the name is %d characters, a Kubernetes port name has at most 15" $name (len $name)) }}
{{- end }}
{{- if not $p.port }}
{{- fail (printf "ports.%s.port is required (the port dockroute listens on in the pod)" $name) }}
{{- end }}
{{- if not (has $protocol (list "TCP" "UDP")) }}
{{- fail (printf "ports.%s.protocol must be TCP or UDP, not %v" $name $protocol) }}
{{- end }}
{{- end }}
{{- if eq $name "websecure" }}
{{- range $key, $v := (default (dict) $p.tls) }}
{{- if and (not (kindIs "invalid" $v)) (not (has $key (list "enabled" "certResolver" "options" "domains"))) }}
{{- fail (printf "ports.websecure.tls.%s is not supported by this chart (its keys: enabled, certResolver, options, domains); set it in staticConfig.entryPoints.websecure.http.tls" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- $where := printf "%v/%s" (int $p.port) $protocol }}
{{- if hasKey $containerPorts $where }}
{{- fail (printf "ports.%s and ports.%s both listen on %s in the pod" (get $containerPorts $where) $name $where) }}
{{- end }}
{{- $_ := set $containerPorts $where $name }}
{{- if and (ne $name "traefik") (include "dockroute.exposed" $p) }}
{{- if and (eq $.Values.service.type "ClusterIP") (not (kindIs "invalid" $p.nodePort)) }}
{{- fail (printf "ports.%s.nodePort is set but service.type is ClusterIP, which has no node ports" $name) }}
{{- end }}
{{- $at := printf "%v/%s" (int (default $p.port $p.exposedPort)) $protocol }}
{{- if hasKey $servicePorts $at }}
{{- fail (printf "ports.%s and ports.%s are both the Service's port %s" (get $servicePorts $at) $name $at) }}
{{- end }}
{{- $_ := set $servicePorts $at $name }}
{{- end }}
{{- end }}
{{- if not $servicePorts }}
{{- fail "ports: no entry point is in the Service (expose is false on every one)" }}
{{- end }}
{{- end }}

{{/* The extra entry points' names (every `ports` name but web, websecure and traefik), sorted, as JSON. */}}
{{- define "dockroute.extraPorts" -}}
{{- $out := list }}
{{- range $name, $_ := .Values.ports }}
{{- if not (has $name (list "web" "websecure" "traefik")) }}{{ $out = append $out $name }}{{ end }}
{{- end }}
{{- toJson $out }}
{{- end }}
