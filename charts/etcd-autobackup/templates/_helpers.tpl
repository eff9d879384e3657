{{- define "etcd-autobackup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "etcd-autobackup.fullname" -}}
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

{{- define "etcd-autobackup.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "etcd-autobackup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "webhook"). */}}
{{- define "etcd-autobackup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etcd-autobackup.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "etcd-autobackup.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "etcd-autobackup.redisName" -}}{{ include "etcd-autobackup.fullname" . }}-redis{{- end -}}
{{- define "etcd-autobackup.redisSecret" -}}{{ default (include "etcd-autobackup.redisName" .) .Values.redis.auth.existingSecret }}{{- end -}}
{{- define "etcd-autobackup.redisSecretKey" -}}{{ if .Values.redis.auth.existingSecret }}{{ .Values.redis.auth.existingSecretKey }}{{ else }}redis-password{{ end }}{{- end -}}
{{- define "etcd-autobackup.tlsSecret" -}}{{ default (printf "%s-webhook-tls" (include "etcd-autobackup.fullname" .)) .Values.tls.secretName }}{{- end -}}
{{- define "etcd-autobackup.webhookService" -}}{{ include "etcd-autobackup.fullname" . }}-webhook{{- end -}}

{{- define "etcd-autobackup.configDir" -}}/etc/etcd-autobackup{{- end -}}
{{- define "etcd-autobackup.etcdPkiDir" -}}/etc/etcd-autobackup/etcd-pki{{- end -}}

{{/* The cert folder on the host, from etcd.certPath or the original service's etcd.cert_path. */}}
{{- define "etcd-autobackup.etcdCertPath" -}}
{{- $legacy := index .Values.etcd "cert_path" | default "" -}}
{{- default .Values.etcd.certPath $legacy -}}
{{- end -}}

{{/*
The store settings the original service's cloudProvider/aws/oci/ncp values stand for, as a
config fragment (YAML), or nothing.
*/}}
{{- define "etcd-autobackup.legacyStore" -}}
{{- $p := .Values.cloudProvider | default "" -}}
{{- if $p -}}
{{- $c := index .Values $p | default dict -}}
{{- if not $c.bucket -}}
{{- fail (printf "cloudProvider is %q but %s.bucket is not set: give the bucket that receives the snapshots" $p $p) -}}
{{- end -}}
{{- $path := $c.bucket -}}
{{- with $c.prefix }}{{ $path = printf "%s/%s" $path (trimAll "/" .) }}{{ end -}}
{{- $s3 := dict -}}
{{- with $c.accessKeyId }}{{ $_ := set $s3 "accessKeyId" . }}{{ end -}}
{{- with $c.secretAccessKey }}{{ $_ := set $s3 "secretAccessKey" . }}{{ end -}}
{{- $url := "" -}}
{{- if eq $p "aws" -}}
{{- $url = printf "s3://%s" $path -}}
{{- with $c.region }}{{ $_ := set $s3 "region" . }}{{ end -}}
{{- else if eq $p "ncp" -}}
{{- $url = printf "ncp://%s?region=%s" $path ($c.region | default "kr") -}}
{{- else if eq $p "oci" -}}
{{- if or (not $c.namespace) (not $c.region) -}}
{{- fail "cloudProvider is \"oci\": oci.namespace (the Object Storage namespace) and oci.region are both needed" -}}
{{- end -}}
{{- $url = printf "s3://%s" $path -}}
{{- $_ := set $s3 "endpoint" (printf "https://%s.compat.objectstorage.%s.oraclecloud.com" $c.namespace $c.region) -}}
{{- $_ := set $s3 "region" $c.region -}}
{{- $_ := set $s3 "forcePathStyle" true -}}
{{- end -}}
{{- toYaml (dict "store" (dict "url" $url "s3" $s3)) -}}
{{- end -}}
{{- end -}}

{{/*
The effective config and the secret env vars, as YAML {config, secretEnv}: what the chart knows
(etcd access, Redis, JSON logs, the store), overridden by the legacy values, overridden by
`config`; then every secret field moves out of the config into secretEnv (env var -> value).
*/}}
{{- define "etcd-autobackup.effective" -}}
{{- $v := .Values -}}
{{- $etcd := dict -}}
{{- $endpoints := $v.etcd.endpoints -}}
{{- with (index $v.etcd "endpoint") -}}
{{- $endpoints = list -}}
{{- range (splitList "," .) }}{{ if trim . }}{{ $endpoints = append $endpoints (trim .) }}{{ end }}{{ end -}}
{{- end -}}
{{- $_ := set $etcd "endpoints" $endpoints -}}
{{- if include "etcd-autobackup.etcdCertPath" . -}}
{{- $dir := include "etcd-autobackup.etcdPkiDir" . -}}
{{- $_ := set $etcd "cacert" (printf "%s/%s" $dir $v.etcd.caFile) -}}
{{- $_ := set $etcd "cert" (printf "%s/%s" $dir $v.etcd.certFile) -}}
{{- $_ := set $etcd "key" (printf "%s/%s" $dir $v.etcd.keyFile) -}}
{{- end -}}
{{- $redisUrl := "" -}}
{{- if $v.redis.enabled -}}
{{- $redisUrl = printf "redis://%s:6379" (include "etcd-autobackup.redisName" .) -}}
{{- else if $v.redis.external.url -}}
{{- $redisUrl = $v.redis.external.url -}}
{{- else if not (dig "redis" "url" "" ($v.config | default dict)) -}}
{{- fail "redis.enabled is false: set redis.external.url (redis://host:6379/0 or rediss://...) or config.redis.url" -}}
{{- end -}}
{{- $cfg := dict "etcd" $etcd "log" (dict "format" "json") "store" (dict "url" (printf "file://%s/snapshots" $v.worker.localStore.mountPath)) -}}
{{- if $redisUrl }}{{ $_ := set $cfg "redis" (dict "url" $redisUrl) }}{{ end -}}
{{- $fullname := include "etcd-autobackup.fullname" . -}}
{{- $confDir := include "etcd-autobackup.configDir" . -}}
{{- if eq $v.tls.mode "managed" -}}
{{- $certs := dict "manage" true "secretName" (include "etcd-autobackup.tlsSecret" .) "serviceName" (include "etcd-autobackup.webhookService" .) "namespace" .Release.Namespace -}}
{{- if $v.admissionWebhook.enabled }}{{ $_ := set $certs "webhookConfigName" $fullname }}{{ end -}}
{{- $_ := set $cfg "certs" $certs -}}
{{- else -}}
{{- $_ := set $cfg "webhook" (dict "tls" (dict "certFile" (printf "%s/tls/tls.crt" $confDir) "keyFile" (printf "%s/tls/tls.key" $confDir))) -}}
{{- end -}}
{{- $auditAuth := dict -}}
{{- if $v.audit.token.enabled }}{{ $_ := set $auditAuth "tokenFile" (printf "%s/audit-token/token" $confDir) }}{{ end -}}
{{- if $v.audit.clientCa.secretName }}{{ $_ := set $auditAuth "clientCaFile" (printf "%s/audit-ca/%s" $confDir $v.audit.clientCa.key) }}{{ end -}}
{{- $_ := set $cfg "auditAuth" $auditAuth -}}
{{- with $v.encryption.existingSecret -}}
{{- $old := list -}}
{{- range $v.encryption.decryptionKeys }}{{ $old = append $old (printf "%s/encryption/%s" $confDir .) }}{{ end -}}
{{- $_ := set $cfg "encryption" (dict "keyFile" (printf "%s/encryption/%s" $confDir $v.encryption.key) "decryptionKeyFiles" $old) -}}
{{- end -}}
{{- if $v.encryption.ageRecipients -}}
{{- if $v.encryption.existingSecret }}{{ fail "encryption.existingSecret (AES-GCM key) and encryption.ageRecipients (age) cannot both encrypt; see docs/encryption.md for moving to age" }}{{ end -}}
{{- $_ := set $cfg "encryption" (dict "recipients" $v.encryption.ageRecipients) -}}
{{- end -}}
{{- $cfg = mustMergeOverwrite $cfg (include "etcd-autobackup.legacyStore" . | fromYaml) -}}
{{- $cfg = mustMergeOverwrite $cfg (deepCopy ($v.config | default dict)) -}}
{{- if eq (toString (dig "executor" "mode" "" $cfg)) "job" -}}
{{- /* The snapshot Job runs this image with this config and Secret, certs at their host path. */ -}}
{{- $url := toString $cfg.store.url -}}
{{- if or (hasPrefix "file://" $url) (not (contains "://" $url)) -}}
{{- fail "config.executor.mode is job but the store is a local folder: the snapshot Job has no volume for it; use an s3://, ncp:// or oci:// store" -}}
{{- end -}}
{{- if $v.encryption.existingSecret -}}
{{- fail "config.executor.mode is job with encryption.existingSecret: the snapshot Job does not mount the key Secret; use executor mode process for encrypted snapshots" -}}
{{- end -}}
{{- $certPath := include "etcd-autobackup.etcdCertPath" . -}}
{{- $job := dict "image" (include "etcd-autobackup.image" .) "imagePullPolicy" $v.image.pullPolicy "namespace" .Release.Namespace "configMap" $fullname -}}
{{- with (default (ternary $fullname "" $v.secrets.create) $v.secrets.existingSecret) }}{{ $_ := set $job "envFromSecret" . }}{{ end -}}
{{- if $certPath -}}
{{- $_ := set $job "etcdCertPath" $certPath -}}
{{- $_ := set $cfg.etcd "cacert" (printf "%s/%s" $certPath $v.etcd.caFile) -}}
{{- $_ := set $cfg.etcd "cert" (printf "%s/%s" $certPath $v.etcd.certFile) -}}
{{- $_ := set $cfg.etcd "key" (printf "%s/%s" $certPath $v.etcd.keyFile) -}}
{{- end -}}
{{- $_ := set $cfg "executor" (mustMergeOverwrite $job $cfg.executor) -}}
{{- end -}}
{{- $secretEnv := dict -}}
{{- range $s := (include "etcd-autobackup.secretSettings" . | fromYamlArray) -}}
{{- $parts := splitList "." $s.path -}}
{{- $node := $cfg -}}
{{- $found := true -}}
{{- range $k := initial $parts -}}
{{- if and $found (kindIs "map" (get $node $k)) }}{{ $node = get $node $k }}{{ else }}{{ $found = false }}{{ end -}}
{{- end -}}
{{- if and $found (hasKey $node (last $parts)) -}}
{{- $val := get $node (last $parts) -}}
{{- if ne (toString $val) "" }}{{ $_ := set $secretEnv $s.env (toString $val) }}{{ end -}}
{{- $_ := unset $node (last $parts) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "config" $cfg "secretEnv" $secretEnv) -}}
{{- end -}}

{{- define "etcd-autobackup.config" -}}
{{- (include "etcd-autobackup.effective" . | fromYaml).config | toYaml -}}
{{- end -}}

{{/* Whether the worker uses the Kubernetes Job executor (RBAC for Jobs and pod logs). */}}
{{- define "etcd-autobackup.jobExecutor" -}}
{{- $cfg := (include "etcd-autobackup.effective" . | fromYaml).config -}}
{{- if eq (toString (dig "executor" "mode" "" $cfg)) "job" }}true{{ end -}}
{{- end -}}

{{- define "etcd-autobackup.webhookScheme" -}}HTTPS{{- end -}}

{{/* Whether the store is a local folder that the worker must mount. */}}
{{- define "etcd-autobackup.fileStore" -}}
{{- $url := (include "etcd-autobackup.effective" . | fromYaml).config.store.url | toString -}}
{{- if and (ne .Values.worker.localStore.type "none") (or (hasPrefix "file://" $url) (not (contains "://" $url))) }}true{{ end -}}
{{- end -}}

{{/* Env of both processes: config file, Redis password, Secrets. */}}
{{- define "etcd-autobackup.env" -}}
env:
  - name: ETCD_AUTOBACKUP_CONFIG
    value: {{ include "etcd-autobackup.configDir" . }}/config.yaml
  - name: POD_NAMESPACE
    valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
  - name: POD_NAME
    valueFrom: { fieldRef: { fieldPath: metadata.name } }
{{- if .Values.redis.enabled }}
  - name: ETCD_AUTOBACKUP_REDIS_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "etcd-autobackup.redisSecret" . }}
        key: {{ include "etcd-autobackup.redisSecretKey" . }}
{{- end }}
{{- if or .Values.secrets.create .Values.secrets.existingSecret }}
envFrom:
{{- if .Values.secrets.create }}
  - secretRef:
      name: {{ include "etcd-autobackup.fullname" . }}
{{- end }}
{{- with .Values.secrets.existingSecret }}
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "etcd-autobackup.checksums" -}}
checksum/config: {{ include "etcd-autobackup.config" . | sha256sum }}
checksum/secret: {{ (include "etcd-autobackup.effective" . | fromYaml).secretEnv | toYaml | sha256sum }}
{{- end -}}
