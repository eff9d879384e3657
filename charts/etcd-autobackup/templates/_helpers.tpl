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
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Pod-level settings every well-kept chart offers, for one component's values (webhook or worker):
priorityClassName and topologySpreadConstraints. Call with the component's values.
*/}}
{{- define "etcd-autobackup.podScheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
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
{{- $legacy := index .Values.etcd "cert_path" | default "" | trimSuffix "/" -}}
{{- if and $legacy (ne $legacy "") }}{{ $legacy }}{{ else }}{{ .Values.etcd.certPath | default "" | trimSuffix "/" }}{{ end -}}
{{- end -}}

{{/* The provider block of the original service's values (aws/oci/ncp), or an empty dict. */}}
{{- define "etcd-autobackup.legacyBlock" -}}
{{- $p := .Values.cloudProvider | default "" -}}
{{- if $p }}{{ toYaml (index .Values $p | default dict) }}{{ else }}{}{{ end -}}
{{- end -}}

{{/*
"true" when the values are the original service's shape (its snake_case keys): then the chart keeps
the original's behaviour where it had one (bucket created when missing, the AWS lifecycle rule,
server.crt as the etcd client cert).
*/}}
{{- define "etcd-autobackup.originalShape" -}}
{{- $c := include "etcd-autobackup.legacyBlock" . | fromYaml -}}
{{- $keys := list "access_key_id" "secret_access_key" "user_ocid" "tenancy_ocid" "api_key_path" "bucket_region" -}}
{{- $found := or (index .Values.etcd "cert_path") (index .Values.etcd "endpoint") -}}
{{- range $keys }}{{ if index $c . }}{{ $found = true }}{{ end }}{{ end -}}
{{- if $found }}true{{ end -}}
{{- end -}}

{{/* The etcd client cert and key file names: etcd.clientCert picks kubeadm's pair, else certFile/keyFile. */}}
{{- define "etcd-autobackup.etcdClientFiles" -}}
{{- $pick := .Values.etcd.clientCert | default "" -}}
{{- if and (eq $pick "") (index .Values.etcd "cert_path") }}{{ $pick = "server" }}{{ end -}}
{{- if $pick -}}
{{- toYaml (dict "cert" (printf "%s.crt" $pick) "key" (printf "%s.key" $pick)) -}}
{{- else -}}
{{- toYaml (dict "cert" .Values.etcd.certFile "key" .Values.etcd.keyFile) -}}
{{- end -}}
{{- end -}}

{{/* Where the worker finds the OCI API key the original service read from the master node. */}}
{{- define "etcd-autobackup.ociKeyDir" -}}/etc/etcd-autobackup/oci-api-key{{- end -}}
{{- define "etcd-autobackup.ociKeyHostPath" -}}
{{- if eq (.Values.cloudProvider | default "") "oci" -}}
{{- (include "etcd-autobackup.legacyBlock" . | fromYaml).api_key_path | default "" -}}
{{- end -}}
{{- end -}}

{{/*
The store settings the original service's cloudProvider/aws/oci/ncp values stand for, as a
config fragment (YAML), or nothing. Both the original's snake_case keys and the camelCase ones of
earlier versions of this chart are read. The bucket defaults to the original's
jujy-etcd-backup-<region>.
*/}}
{{- define "etcd-autobackup.legacyStore" -}}
{{- $p := .Values.cloudProvider | default "" -}}
{{- if $p -}}
{{- $c := include "etcd-autobackup.legacyBlock" . | fromYaml -}}
{{- $region := "" -}}
{{- if eq $p "oci" }}{{ $region = $c.bucket_region | default $c.region | default "" }}{{ else }}{{ $region = $c.region | default "" }}{{ end -}}
{{- if and (eq $p "ncp") (not $region) }}{{ $region = "kr" }}{{ end -}}
{{- $bucket := $c.bucket | default "" -}}
{{- if not $bucket -}}
{{- if not $region -}}
{{- fail (printf "cloudProvider is %q but neither %s.bucket nor %s.%s is set: give the region (the bucket is then jujy-etcd-backup-<region>, as in the original) or the bucket" $p $p $p (ternary "bucket_region" "region" (eq $p "oci"))) -}}
{{- end -}}
{{- $bucket = printf "jujy-etcd-backup-%s" $region -}}
{{- end -}}
{{- $path := $bucket -}}
{{- with $c.prefix }}{{ $path = printf "%s/%s" $path (trimAll "/" .) }}{{ end -}}
{{- $s3 := dict -}}
{{- with ($c.access_key_id | default $c.accessKeyId) }}{{ $_ := set $s3 "accessKeyId" (toString .) }}{{ end -}}
{{- with ($c.secret_access_key | default $c.secretAccessKey) }}{{ $_ := set $s3 "secretAccessKey" (toString .) }}{{ end -}}
{{- $store := dict -}}
{{- if eq $p "aws" -}}
{{- with $region }}{{ $_ := set $s3 "region" . }}{{ end -}}
{{- $store = dict "url" (printf "s3://%s" $path) "s3" $s3 -}}
{{- else if eq $p "ncp" -}}
{{- $store = dict "url" (printf "ncp://%s?region=%s" $path $region) "s3" $s3 -}}
{{- else if eq $p "oci" -}}
{{- if or (not $c.namespace) (not $region) -}}
{{- fail "cloudProvider is \"oci\": oci.namespace (the Object Storage namespace) and oci.bucket_region (or oci.region) are both needed" -}}
{{- end -}}
{{- if or $c.user_ocid $c.tenancy_ocid $c.api_key_path -}}
{{- /* The original's API key: the native OCI store signs requests with it. */ -}}
{{- if not (and $c.user_ocid $c.tenancy_ocid $c.api_key_path) -}}
{{- fail "cloudProvider is \"oci\" with an API key: oci.user_ocid, oci.tenancy_ocid and oci.api_key_path are all needed" -}}
{{- end -}}
{{- $oci := dict "tenancy" $c.tenancy_ocid "user" $c.user_ocid "region" $region "privateKeyFile" (printf "%s/%s" (include "etcd-autobackup.ociKeyDir" .) (base $c.api_key_path)) -}}
{{- with $c.fingerprint }}{{ $_ := set $oci "fingerprint" . }}{{ end -}}
{{- $store = dict "url" (printf "oci://%s/%s?region=%s" $c.namespace $path $region) "oci" $oci -}}
{{- else -}}
{{- /* Customer secret keys: OCI's S3-compatible endpoint. */ -}}
{{- $_ := set $s3 "endpoint" (printf "https://%s.compat.objectstorage.%s.oraclecloud.com" $c.namespace $region) -}}
{{- $_ := set $s3 "region" $region -}}
{{- $_ := set $s3 "forcePathStyle" true -}}
{{- $store = dict "url" (printf "s3://%s" $path) "s3" $s3 -}}
{{- end -}}
{{- end -}}
{{- $frag := dict "store" $store -}}
{{- if include "etcd-autobackup.originalShape" . -}}
{{- /* The original created its bucket and (on AWS) put a 60-day GLACIER / 180-day expiry rule on it. */ -}}
{{- $_ := set $store "createBucket" true -}}
{{- if eq $p "aws" }}{{ $_ := set $frag "lifecycle" (dict "enabled" true "transitionDays" 60 "expireDays" 180) }}{{ end -}}
{{- end -}}
{{- toYaml $frag -}}
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
{{- $scheme := ternary "https" "http" (ne (include "etcd-autobackup.etcdCertPath" $) "") -}}
{{- range (splitList "," .) }}{{ $e := trim . }}{{ if $e }}{{ if not (contains "://" $e) }}{{ $e = printf "%s://%s" $scheme $e }}{{ end }}{{ $endpoints = append $endpoints $e }}{{ end }}{{ end -}}
{{- end -}}
{{- $_ := set $etcd "endpoints" $endpoints -}}
{{- if include "etcd-autobackup.etcdCertPath" . -}}
{{- $dir := include "etcd-autobackup.etcdPkiDir" . -}}
{{- $_ := set $etcd "cacert" (printf "%s/%s" $dir $v.etcd.caFile) -}}
{{- $files := include "etcd-autobackup.etcdClientFiles" . | fromYaml -}}
{{- $_ := set $etcd "cert" (printf "%s/%s" $dir $files.cert) -}}
{{- $_ := set $etcd "key" (printf "%s/%s" $dir $files.key) -}}
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
{{- /* --- metrics protection */ -}}
{{- if $v.metricsAuth.enabled }}{{ $_ := set $cfg "metricsAuth" (dict "tokenFile" (printf "%s/metrics-token/token" $confDir)) }}{{ end -}}
{{- with $v.encryption.existingSecret -}}
{{- $old := list -}}
{{- range $v.encryption.decryptionKeys }}{{ $old = append $old (printf "%s/encryption/%s" $confDir .) }}{{ end -}}
{{- $_ := set $cfg "encryption" (dict "keyFile" (printf "%s/encryption/%s" $confDir $v.encryption.key) "decryptionKeyFiles" $old) -}}
{{- end -}}
{{- /* age recipients: from values, from the text of a recipients file (--set-file), from a Secret (a file the worker reads). */ -}}
{{- $recipients := list -}}
{{- range $v.encryption.ageRecipients }}{{ $recipients = append $recipients . }}{{ end -}}
{{- range $i, $line := regexSplit "\r?\n" ($v.encryption.ageRecipientsFile | default "") -1 -}}
{{- $r := trim $line -}}
{{- if and $r (not (hasPrefix "#" $r)) -}}
{{- if not (regexMatch "^age1[02-9ac-hj-np-z]{58}$" $r) }}{{ fail (printf "encryption.ageRecipientsFile line %d is not an age X25519 recipient (age1 followed by 58 characters, as age-keygen -y prints)" (add1 $i)) }}{{ end -}}
{{- $recipients = append $recipients $r -}}
{{- end -}}
{{- end -}}
{{- if or $recipients $v.encryption.ageRecipientsSecret -}}
{{- if $v.encryption.existingSecret }}{{ fail "encryption.existingSecret (AES-GCM key) and encryption.ageRecipients (age) cannot both encrypt; see docs/encryption.md for moving to age" }}{{ end -}}
{{- $age := dict -}}
{{- if $recipients }}{{ $_ := set $age "recipients" (uniq $recipients) }}{{ end -}}
{{- if $v.encryption.ageRecipientsSecret }}{{ $_ := set $age "recipientsFile" (printf "%s/age/%s" $confDir $v.encryption.ageRecipientsKey) }}{{ end -}}
{{- $_ := set $cfg "encryption" $age -}}
{{- end -}}
{{- /* Kubernetes Events are about the worker Deployment (docs/events.md). */ -}}
{{- $_ := set $cfg "events" (dict "deployment" (printf "%s-worker" $fullname) "namespace" .Release.Namespace) -}}
{{- if $v.encryption.ageIdentitySecret -}}
{{- $enc := (get $cfg "encryption") | default dict -}}
{{- $_ := set $enc "identityFiles" (list (printf "%s/age-identity/%s" $confDir $v.encryption.ageIdentityKey)) -}}
{{- $_ := set $cfg "encryption" $enc -}}
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
{{- if $v.encryption.ageRecipientsSecret -}}
{{- fail "config.executor.mode is job with encryption.ageRecipientsSecret: the snapshot Job does not mount that Secret; give the recipients as encryption.ageRecipients or encryption.ageRecipientsFile (they go into the config)" -}}
{{- end -}}
{{- $certPath := include "etcd-autobackup.etcdCertPath" . -}}
{{- $job := dict "image" (include "etcd-autobackup.image" .) "imagePullPolicy" $v.image.pullPolicy "namespace" .Release.Namespace "configMap" $fullname -}}
{{- $pull := list -}}
{{- range $v.imagePullSecrets }}{{ $pull = append $pull .name }}{{ end -}}
{{- with $pull }}{{ $_ := set $job "imagePullSecrets" . }}{{ end -}}
{{- with (default (ternary $fullname "" $v.secrets.create) $v.secrets.existingSecret) }}{{ $_ := set $job "envFromSecret" . }}{{ end -}}
{{- if $certPath -}}
{{- $_ := set $job "etcdCertPath" $certPath -}}
{{- $_ := set $cfg.etcd "cacert" (printf "%s/%s" $certPath $v.etcd.caFile) -}}
{{- $files := include "etcd-autobackup.etcdClientFiles" . | fromYaml -}}
{{- $_ := set $cfg.etcd "cert" (printf "%s/%s" $certPath $files.cert) -}}
{{- $_ := set $cfg.etcd "key" (printf "%s/%s" $certPath $files.key) -}}
{{- end -}}
{{- $_ := set $cfg "executor" (mustMergeOverwrite $job $cfg.executor) -}}
{{- end -}}
{{- if and (eq (toString (dig "drill" "executor" "" $cfg)) "job") (ne (toString (dig "executor" "mode" "" $cfg)) "job") -}}
{{- /* Drill Jobs run this image beside etcd's with this config and Secret (docs/drills.md); no host access. */ -}}
{{- $url := toString $cfg.store.url -}}
{{- if or (hasPrefix "file://" $url) (not (contains "://" $url)) -}}
{{- fail "config.drill.executor is job but the store is a local folder: the drill Job has no volume for it; use an s3://, ncp:// or oci:// store" -}}
{{- end -}}
{{- $job := dict "image" (include "etcd-autobackup.image" .) "imagePullPolicy" $v.image.pullPolicy "namespace" .Release.Namespace "configMap" $fullname -}}
{{- $pull := list -}}
{{- range $v.imagePullSecrets }}{{ $pull = append $pull .name }}{{ end -}}
{{- with $pull }}{{ $_ := set $job "imagePullSecrets" . }}{{ end -}}
{{- with (default (ternary $fullname "" $v.secrets.create) $v.secrets.existingSecret) }}{{ $_ := set $job "envFromSecret" . }}{{ end -}}
{{- $_ := set $cfg "executor" (mustMergeOverwrite $job ($cfg.executor | default dict)) -}}
{{- end -}}
{{- if eq (toString (dig "drill" "executor" "" $cfg)) "job" -}}
{{- /* The drill pod's CLI reads the key and identity at the worker's paths: the same Secrets, read-only, never in etcd's containers. */ -}}
{{- $mounts := list -}}
{{- with $v.encryption.existingSecret }}{{ $mounts = append $mounts (dict "secretName" . "mountPath" (printf "%s/encryption" $confDir)) }}{{ end -}}
{{- with $v.encryption.ageIdentitySecret -}}
{{- $items := list (dict "key" $v.encryption.ageIdentityKey "path" $v.encryption.ageIdentityKey) -}}
{{- $mounts = append $mounts (dict "secretName" . "mountPath" (printf "%s/age-identity" $confDir) "defaultMode" 288 "items" $items) -}}
{{- end -}}
{{- with $mounts -}}
{{- $drillJob := (get $cfg.drill "job") | default dict -}}
{{- $_ := set $drillJob "secretMounts" (concat ((get $drillJob "secretMounts") | default list) $mounts) -}}
{{- $_ := set $cfg.drill "job" $drillJob -}}
{{- end -}}
{{- end -}}
{{- $secretEnv := dict -}}
{{- /* Store credentials are for the worker (and its Jobs) only: the webhook never opens the store. */ -}}
{{- $storeEnv := list "ETCD_AUTOBACKUP_S3_ACCESS_KEY_ID" -}}
{{- $settings := include "etcd-autobackup.secretSettings" . | fromYamlArray -}}
{{- /* The access key id is no secret to the service, but half a credential: kept out of the ConfigMap too. */ -}}
{{- $settings = append $settings (dict "path" "store.s3.accessKeyId" "env" "ETCD_AUTOBACKUP_S3_ACCESS_KEY_ID") -}}
{{- range $s := $settings -}}
{{- if hasPrefix "store." $s.path }}{{ $storeEnv = append $storeEnv $s.env }}{{ end -}}
{{- end -}}
{{- range $s := $settings -}}
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
{{- $webhookEnv := omit $secretEnv -}}
{{- range $storeEnv }}{{ $_ := unset $webhookEnv . }}{{ end -}}
{{- toYaml (dict "config" $cfg "secretEnv" $secretEnv "webhookSecretEnv" $webhookEnv) -}}
{{- end -}}

{{- define "etcd-autobackup.config" -}}
{{- (include "etcd-autobackup.effective" . | fromYaml).config | toYaml -}}
{{- end -}}

{{/* Whether the worker uses the Kubernetes Job executor (RBAC for Jobs and pod logs). */}}
{{- define "etcd-autobackup.jobExecutor" -}}
{{- $cfg := (include "etcd-autobackup.effective" . | fromYaml).config -}}
{{- if eq (toString (dig "executor" "mode" "" $cfg)) "job" }}true{{ end -}}
{{- end -}}

{{/* Whether the worker creates Jobs at all: snapshot Jobs or drill Jobs (drill.executor: job). */}}
{{- define "etcd-autobackup.kubeJobs" -}}
{{- $cfg := (include "etcd-autobackup.effective" . | fromYaml).config -}}
{{- if or (eq (toString (dig "executor" "mode" "" $cfg)) "job") (eq (toString (dig "drill" "executor" "" $cfg)) "job") }}true{{ end -}}
{{- end -}}

{{/* Whether the worker creates Kubernetes Events (it then reads its own Deployment's uid). */}}
{{- define "etcd-autobackup.events" -}}
{{- $cfg := (include "etcd-autobackup.effective" . | fromYaml).config -}}
{{- if dig "events" "enabled" false $cfg }}true{{ end -}}
{{- end -}}

{{- define "etcd-autobackup.webhookScheme" -}}HTTPS{{- end -}}

{{/* Whether the store is a local folder that the worker must mount. */}}
{{- define "etcd-autobackup.fileStore" -}}
{{- $url := (include "etcd-autobackup.effective" . | fromYaml).config.store.url | toString -}}
{{- if and (ne .Values.worker.localStore.type "none") (or (hasPrefix "file://" $url) (not (contains "://" $url))) }}true{{ end -}}
{{- end -}}

{{/*
The chart's Secret for a component: the worker's holds every secret setting, the webhook's the
same without the store credentials.
*/}}
{{- define "etcd-autobackup.secretName" -}}
{{- include "etcd-autobackup.fullname" .ctx }}{{ if eq .component "webhook" }}-webhook{{ end -}}
{{- end -}}

{{/* Env of a process: config file, Redis password, Secrets. Call with (dict "ctx" $ "component" "worker"). */}}
{{- define "etcd-autobackup.env" -}}
env:
  - name: ETCD_AUTOBACKUP_CONFIG
    value: {{ include "etcd-autobackup.configDir" $.ctx }}/config.yaml
  - name: POD_NAMESPACE
    valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
  - name: POD_NAME
    valueFrom: { fieldRef: { fieldPath: metadata.name } }
  # The worker listens on it (worker.listenAddress): on the host network that is the node's address.
  - name: POD_IP
    valueFrom: { fieldRef: { fieldPath: status.podIP } }
{{- with (index $.ctx.Values $.component).extraEnv }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $.ctx.Values.redis.enabled }}
  - name: ETCD_AUTOBACKUP_REDIS_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "etcd-autobackup.redisSecret" $.ctx }}
        key: {{ include "etcd-autobackup.redisSecretKey" $.ctx }}
{{- end }}
{{- if or $.ctx.Values.secrets.create $.ctx.Values.secrets.existingSecret }}
envFrom:
{{- if $.ctx.Values.secrets.create }}
  - secretRef:
      name: {{ include "etcd-autobackup.secretName" (dict "ctx" $.ctx "component" $.component) }}
{{- end }}
{{- with $.ctx.Values.secrets.existingSecret }}
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "etcd-autobackup.checksums" -}}
checksum/config: {{ include "etcd-autobackup.config" . | sha256sum }}
checksum/secret: {{ (include "etcd-autobackup.effective" . | fromYaml).secretEnv | toYaml | sha256sum }}
{{- end -}}

{{/* --- metrics protection: the Secret holding the bearer token of /metrics. */}}
{{- define "etcd-autobackup.metricsTokenSecret" -}}
{{- default (printf "%s-metrics-token" (include "etcd-autobackup.fullname" .)) .Values.metricsAuth.existingSecret -}}
{{- end -}}
{{- define "etcd-autobackup.metricsTokenMount" -}}
{{- if .Values.metricsAuth.enabled }}
- name: metrics-token
  mountPath: {{ include "etcd-autobackup.configDir" . }}/metrics-token
  readOnly: true
{{- end }}
{{- end -}}
{{- define "etcd-autobackup.metricsTokenVolume" -}}
{{- if .Values.metricsAuth.enabled }}
- name: metrics-token
  secret:
    secretName: {{ include "etcd-autobackup.metricsTokenSecret" . }}
    items: [{ key: {{ .Values.metricsAuth.key | quote }}, path: token }]
{{- end }}
{{- end -}}

{{/* Seconds in a config duration (500ms, 30s, 5m, 1h30m, 7d; "0" is 0), rounded up. */}}
{{- define "etcd-autobackup.seconds" -}}
{{- $total := 0.0 -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)" (toString . | trim) -1 -}}
{{- $unit := regexFind "(ms|s|m|h|d)$" . -}}
{{- $total = addf $total (mulf (trimSuffix $unit . | float64) (get $units $unit)) -}}
{{- end -}}
{{- $total | ceil | int -}}
{{- end -}}

{{/*
PromQL: a counter (with labels only on events, so it starts at its first event) went up within
`range`. increase() alone misses the first event: the series did not exist before it.
*/}}
{{- define "etcd-autobackup.increased" -}}
sum by ({{ .by }}) (increase({{ .series }}[{{ .range }}])) > 0 or sum by ({{ .by }}) ({{ .series }} unless {{ .series }} offset {{ .range }}) > 0
{{- end -}}

{{/* Labels of one alert: its severity and prometheusRule.alertLabels. */}}
{{- define "etcd-autobackup.alertLabels" -}}
severity: {{ .severity }}
{{- with .r.alertLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
