{{/*
Chart name, truncated to a DNS label.
*/}}
{{- define "oz-agent-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full resource name: the release name, prefixed by the chart name unless the
release name already contains it (so release "oz-agent-worker" gives
"oz-agent-worker").
*/}}
{{- define "oz-agent-worker.fullname" -}}
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

{{- define "oz-agent-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: exactly the Go chart's two. A Deployment's selector is
immutable, so any other label here would make `helm upgrade` of a Go-worker
release fail.
*/}}
{{- define "oz-agent-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oz-agent-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "oz-agent-worker.labels" -}}
helm.sh/chart: {{ include "oz-agent-worker.chart" . }}
{{ include "oz-agent-worker.selectorLabels" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The pod's labels: worker.podLabels, then the selector labels (which a pod
label of the same name cannot replace, or the Deployment would not select
its pod).
*/}}
{{- define "oz-agent-worker.podLabels" -}}
{{- $labels := merge (include "oz-agent-worker.selectorLabels" . | fromYaml) (.Values.worker.podLabels | default dict) -}}
{{- toYaml $labels }}
{{- end }}

{{/*
The worker's ServiceAccount: serviceAccount.name, or with create=true the
full name when it is empty.
*/}}
{{- define "oz-agent-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "oz-agent-worker.fullname" .) -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false: the existing ServiceAccount the worker runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/*
The API key Secret: warp.apiKeySecret.name, or with create=true
<fullname>-api-key when it is empty.
*/}}
{{- define "oz-agent-worker.apiKeySecretName" -}}
{{- if .Values.warp.apiKeySecret.create -}}
{{- .Values.warp.apiKeySecret.name | default (printf "%s-api-key" (include "oz-agent-worker.fullname" .)) -}}
{{- else -}}
{{- required "warp.apiKeySecret.name is required when warp.apiKeySecret.create=false: the existing Secret holding the API key" .Values.warp.apiKeySecret.name -}}
{{- end -}}
{{- end }}

{{/*
The worker config file's ConfigMap, mounted at /etc/oz-agent-worker.
*/}}
{{- define "oz-agent-worker.configMapName" -}}
{{- include "oz-agent-worker.fullname" . }}-config
{{- end }}

{{/*
Namespace the task Jobs run in: kubernetesBackend.namespace, or the release
namespace. The Role and RoleBinding live there.
*/}}
{{- define "oz-agent-worker.taskNamespace" -}}
{{ .Values.kubernetesBackend.namespace | default .Release.Namespace }}
{{- end }}

{{/*
The required values, checked once with messages that name the value. The
schema checks types and enums; these cover what must be set by the user.
*/}}
{{- define "oz-agent-worker.validate" -}}
{{- $id := required "worker.workerId is required: the worker ID (same as --worker-id), e.g. --set worker.workerId=oz-k8s-worker" .Values.worker.workerId -}}
{{- if hasPrefix "warp" (lower $id) -}}
{{- fail (printf "worker.workerId %q is invalid: worker IDs starting with \"warp\" are reserved" $id) -}}
{{- end -}}
{{- $_ := required "image.tag is required: the oz-worker image tag to deploy, e.g. --set image.tag=0.1.0" .Values.image.tag -}}
{{- if hasKey .Values "imagePullSecrets" -}}
{{- fail "imagePullSecrets is now image.pullSecrets (as in the Go worker's chart): move the list there" -}}
{{- end -}}
{{- $_ := include "oz-agent-worker.serviceAccountName" . -}}
{{- $_ := include "oz-agent-worker.apiKeySecretName" . -}}
{{- if and .Values.warp.apiKeySecret.create (not .Values.warp.apiKeySecret.value) -}}
{{- fail "warp.apiKeySecret.value is required when warp.apiKeySecret.create is true (or set warp.apiKeySecret.create=false and create the Secret yourself)" -}}
{{- end -}}
{{- if and (include "oz-agent-worker.prometheusEnabled" .) (eq (int .Values.metrics.port) (int .Values.worker.healthPort)) -}}
{{- fail (printf "metrics.port and worker.healthPort are both %d: the Prometheus endpoint and the health endpoints need different ports" (int .Values.worker.healthPort)) -}}
{{- end -}}
{{- end }}

{{/*
"true" when the worker serves a Prometheus endpoint, else empty.
*/}}
{{- define "oz-agent-worker.prometheusEnabled" -}}
{{- if and .Values.metrics.enabled (eq .Values.metrics.exporter "prometheus") }}true{{ end }}
{{- end }}

{{/*
The permissions the worker uses in the task namespace: the one place they are
listed in the chart. Keep this list exact and equal to REQUIRED_PERMISSIONS in
src/preflight/permissions.ts (a unit test compares them): preflight checks
each of them, and the minimality tests remove each rule in turn.
  jobs      create, get, list, watch,  task and preflight Jobs; adoption;
            patch, delete              the reported-outcome annotation
  pods      get, list, watch           task pod status
  pods/log  get                        logs of failed task pods
  events    list                       FailedCreate / FailedMount
  secrets   create, get                the per-task env Secret (owned by its Job)
*/}}
{{- define "oz-agent-worker.rbacRules" -}}
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "get"]
{{- end }}

{{/*
The worker config file (config.yaml), built from values. camelCase values
become the worker's snake_case keys; empty values are left out so the
worker's own defaults apply.
*/}}
{{- define "oz-agent-worker.config" -}}
{{- $w := .Values.worker -}}
{{- $kb := .Values.kubernetesBackend -}}
{{- $k8s := dict "namespace" (include "oz-agent-worker.taskNamespace" .) -}}
{{- with $kb.defaultImage }}{{ $_ := set $k8s "default_image" . }}{{ end -}}
{{- with $kb.imagePullPolicy }}{{ $_ := set $k8s "image_pull_policy" . }}{{ end -}}
{{- if $kb.useImageVolumes }}{{ $_ := set $k8s "use_image_volumes" true }}{{ end -}}
{{- with $kb.preflightImage }}{{ $_ := set $k8s "preflight_image" . }}{{ end -}}
{{- with $kb.preflightResources }}{{ $_ := set $k8s "preflight_resources" . }}{{ end -}}
{{- with $kb.sidecarImage }}{{ $_ := set $k8s "sidecar_image" . }}{{ end -}}
{{- with $kb.unschedulableTimeout }}{{ $_ := set $k8s "unschedulable_timeout" . }}{{ end -}}
{{- with $kb.setupCommand }}{{ $_ := set $k8s "setup_command" . }}{{ end -}}
{{- with $kb.teardownCommand }}{{ $_ := set $k8s "teardown_command" . }}{{ end -}}
{{- with $kb.extraLabels }}{{ $_ := set $k8s "extra_labels" . }}{{ end -}}
{{- with $kb.extraAnnotations }}{{ $_ := set $k8s "extra_annotations" . }}{{ end -}}
{{- with $kb.activeDeadlineSeconds }}{{ $_ := set $k8s "active_deadline_seconds" (int64 .) }}{{ end -}}
{{- /* The worker keeps every Job when cleanup is off, so a TTL applies only with cleanup; 0 is kept (delete at once). */ -}}
{{- if and $w.cleanup (not (kindIs "invalid" $kb.ttlSecondsAfterFinished)) }}{{ $_ := set $k8s "ttl_seconds_after_finished" (int64 $kb.ttlSecondsAfterFinished) }}{{ end -}}
{{- with $kb.workspaceSizeLimit }}{{ $_ := set $k8s "workspace_size_limit" . }}{{ end -}}
{{- with $kb.podTemplate }}{{ $_ := set $k8s "pod_template" . }}{{ end -}}
{{- $cfg := dict
      "worker_id" $w.workerId
      "cleanup" $w.cleanup
      "max_concurrent_tasks" (int64 $w.maxConcurrentTasks)
      "backend" (dict "kubernetes" $k8s) -}}
{{- with $w.idleOnComplete }}{{ $_ := set $cfg "idle_on_complete" . }}{{ end -}}
{{- toYaml $cfg }}
{{- end }}

{{/*
Names of the env vars set in worker.extraEnv and metrics.extraEnv, so the
chart's own defaults for the same names are left out (one entry per name).
*/}}
{{- define "oz-agent-worker.userEnvNames" -}}
{{- range (concat .Values.worker.extraEnv .Values.metrics.extraEnv) }}
{{- printf "%s\n" .name }}
{{- end }}
{{- end }}

{{/*
A probe from values (worker.livenessProbe, worker.readinessProbe), rendered
as given. Helm merges a user's probe into the default one, so a probe with its
own handler (exec, tcpSocket or grpc) drops the default httpGet rather than
being rendered with two handlers. Called with the probe value; nothing when
it is null.
*/}}
{{- define "oz-agent-worker.probe" -}}
{{- with . }}
{{- $probe := deepCopy . }}
{{- if or (hasKey $probe "exec") (hasKey $probe "tcpSocket") (hasKey $probe "grpc") }}
{{- $_ := unset $probe "httpGet" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
{{- end }}

{{- define "oz-agent-worker.livenessProbe" -}}
{{- include "oz-agent-worker.probe" .Values.worker.livenessProbe }}
{{- end }}

{{- define "oz-agent-worker.readinessProbe" -}}
{{- include "oz-agent-worker.probe" .Values.worker.readinessProbe }}
{{- end }}
