{{/*
Names, labels and the pieces every Yunguan pod shares.
*/}}

{{- define "yunguan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* 40 characters leave room for "-worker-kubernetes" inside a 63-character Service/label name. */}}
{{- define "yunguan.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "yunguan.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "api"). */}}
{{- define "yunguan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yunguan.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "yunguan.labels" -}}
{{ include "yunguan.selectorLabels" . }}
helm.sh/chart: {{ include "yunguan.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: yunguan
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "yunguan.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "yunguan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "yunguan.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
API versions follow the cluster: on install and upgrade .Capabilities is the
server's discovery, so a 1.20 apiserver (no autoscaling/v2, no policy/v1) gets
the beta APIs. Offline, `helm template --kube-version 1.20.2` renders the same
choice, because helm's built-in API list names both generations.
*/}}
{{- define "yunguan.hpa.apiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{- define "yunguan.pdb.apiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/* The topology ConfigMap's name: the operator's, or the chart's hook ConfigMap. */}}
{{- define "yunguan.topologyConfigMap" -}}
{{- if .Values.topology.existingConfigMap -}}
{{- .Values.topology.existingConfigMap -}}
{{- else if .Values.topology.content -}}
{{- printf "%s-topology" (include "yunguan.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Environment shared by every Yunguan container. Credentials only ever come
from secretKeyRef; call with (dict "root" $ "db" true "broker" false "secretKey" false).
*/}}
{{- define "yunguan.env" -}}
{{- $v := .root.Values -}}
- name: YUNGUAN_MODE
  value: production
- name: YUNGUAN_DATA_DIR
  value: {{ $v.scratch.dataDir | quote }}
- name: YUNGUAN_LOG__LEVEL
  value: {{ $v.config.logLevel | quote }}
- name: YUNGUAN_LOG__JSON_FORMAT
  value: {{ $v.config.logJson | quote }}
- name: PYTHONUNBUFFERED
  value: "1"
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: HOME
  value: {{ $v.scratch.dataDir | quote }}
{{- if .db }}
- name: YUNGUAN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.database.existingSecret }}
      key: {{ $v.database.urlKey }}
{{- end }}
{{- if .broker }}
- name: YUNGUAN_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.broker.existingSecret }}
      key: {{ $v.broker.urlKey }}
{{- end }}
{{- if .secretKey }}
- name: YUNGUAN_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.secretKey.existingSecret }}
      key: {{ $v.secretKey.key }}
{{- end }}
{{- if .topology }}
{{- if include "yunguan.topologyConfigMap" .root }}
- name: YUNGUAN_TOPOLOGY_FILE
  value: {{ printf "%s/topology.yaml" $v.topology.mountPath | quote }}
{{- end }}
{{- end }}
{{- range $k, $val := $v.config.worker }}
- name: {{ printf "YUNGUAN_WORKER__%s" ($k | upper) }}
  value: {{ $val | toString | quote }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "yunguan.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/*
Pod-level settings shared by every pod; call with (dict "root" $ "c" <component
values>) and optionally "sa", a ServiceAccount name of its own.
*/}}
{{- define "yunguan.podCommon" -}}
{{- $v := .root.Values -}}
serviceAccountName: {{ .sa | default (include "yunguan.serviceAccountName" .root) }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The writable scratch volumes (the root filesystem is read-only). */}}
{{- define "yunguan.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
{{- end -}}

{{- define "yunguan.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.scratch.dataDir }}
{{- end -}}

{{/*
Install-time checks against the cluster. `lookup` answers nothing without a
cluster (template, lint), so the checks run only when kube-system is visible.
The Secrets' values are never read into the output: only key presence.
*/}}
{{- define "yunguan.preflight" -}}
{{- if and .Values.preflight.checkSecrets (lookup "v1" "Namespace" "" "kube-system") -}}
{{- $ns := .Release.Namespace -}}
{{- $need := list (list .Values.database.existingSecret .Values.database.urlKey "database.existingSecret")
                  (list .Values.broker.existingSecret .Values.broker.urlKey "broker.existingSecret")
                  (list .Values.secretKey.existingSecret .Values.secretKey.key "secretKey.existingSecret") -}}
{{- range $kind, $cred := .Values.cloudCredentials -}}
{{- if $cred.existingSecret -}}
{{- $need = append $need (list $cred.existingSecret "" (printf "cloudCredentials.%s.existingSecret" $kind)) -}}
{{- end -}}
{{- end -}}
{{- range $need -}}
{{- $s := lookup "v1" "Secret" $ns (index . 0) -}}
{{- if not $s -}}
{{- fail (printf "%s: Secret %q not found in namespace %q; create it before installing (see the README's Helm chart section)" (index . 2) (index . 0) $ns) -}}
{{- end -}}
{{- if and (index . 1) (not (hasKey (default dict $s.data) (index . 1))) -}}
{{- fail (printf "%s: Secret %q has no key %q" (index . 2) (index . 0) (index . 1)) -}}
{{- end -}}
{{- end -}}
{{- range $cm := list .Values.topology.existingConfigMap .Values.config.oidc.jwksConfigMap -}}
{{- if and $cm (not (lookup "v1" "ConfigMap" $ns $cm)) -}}
{{- fail (printf "ConfigMap %q not found in namespace %q; create it before installing" $cm $ns) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
