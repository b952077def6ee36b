{{/*
Names, labels and the pieces every object shares. Object names are <fullname>-<component>,
capped at 63 characters (DNS-1123 label); the RayCluster name is capped at 53 (KubeRay's limit).
*/}}

{{- define "videop2r.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "videop2r.fullname" -}}
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

{{- define "videop2r.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <fullname>-<component>; call with (dict "root" $ "component" "reward-judge"). */}}
{{- define "videop2r.componentName" -}}
{{- printf "%s-%s" (include "videop2r.fullname" .root | trunc 50 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* KubeRay names Services and Pods after the cluster: DNS-1035 label, at most 53 characters. */}}
{{- define "videop2r.rayClusterName" -}}
{{- $name := include "videop2r.fullname" . | trunc 53 | trimSuffix "-" -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "RayCluster name %q is not a DNS-1035 label (start with a letter): set fullnameOverride" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "videop2r.selectorLabels" -}}
app.kubernetes.io/name: {{ include "videop2r.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "videop2r.labels" -}}
helm.sh/chart: {{ include "videop2r.chart" .root }}
{{ include "videop2r.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: videop2r
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pods of the RayCluster (head and learner workers): the only clients of rollout and rewards. */}}
{{- define "videop2r.rayPodsPeer" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/name: {{ include "videop2r.name" . }}
    app.kubernetes.io/instance: {{ .Release.Name }}
  matchExpressions:
    - key: app.kubernetes.io/component
      operator: In
      values: [ray-head, ray-learner]
{{- end -}}

{{/* image: call with (dict "root" $ "image" .Values.image). */}}
{{- define "videop2r.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "videop2r.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "videop2r.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The shared pod-level spec fields: service account, pull secrets, pod securityContext. */}}
{{- define "videop2r.podDefaults" -}}
serviceAccountName: {{ include "videop2r.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "videop2r.containerSecurityContext" -}}
{{- toYaml .Values.securityContext -}}
{{- end -}}

{{/* Scheduling fields of a component: call with its values. */}}
{{- define "videop2r.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* -------------------------------------------------------------- object storage (S3) */}}

{{- define "videop2r.s3.check" -}}
{{- if and .Values.s3.external.enabled .Values.minio.enabled -}}
{{- fail "s3.external.enabled and minio.enabled are both true: turn minio.enabled off to use external S3" -}}
{{- end -}}
{{- if and .Values.s3.external.enabled (not .Values.s3.external.existingSecret) -}}
{{- fail "s3.external.enabled needs s3.external.existingSecret (a Secret with the access key id and secret)" -}}
{{- end -}}
{{- if and .Values.s3.external.enabled (not .Values.s3.external.endpoint) -}}
{{- fail "s3.external.enabled needs s3.external.endpoint (host[:port])" -}}
{{- end -}}
{{- end -}}

{{- define "videop2r.s3.enabled" -}}
{{- if or .Values.minio.enabled .Values.s3.external.enabled -}}true{{- end -}}
{{- end -}}

{{- define "videop2r.s3.secretName" -}}
{{- if .Values.s3.external.enabled -}}
{{- .Values.s3.external.existingSecret -}}
{{- else if .Values.minio.auth.existingSecret -}}
{{- .Values.minio.auth.existingSecret -}}
{{- else -}}
{{- include "videop2r.componentName" (dict "root" . "component" "s3") -}}
{{- end -}}
{{- end -}}

{{- define "videop2r.s3.accessKeyIdKey" -}}
{{- if .Values.s3.external.enabled }}{{ .Values.s3.external.accessKeyIdKey }}{{ else }}AWS_ACCESS_KEY_ID{{ end -}}
{{- end -}}

{{- define "videop2r.s3.secretAccessKeyKey" -}}
{{- if .Values.s3.external.enabled }}{{ .Values.s3.external.secretAccessKeyKey }}{{ else }}AWS_SECRET_ACCESS_KEY{{ end -}}
{{- end -}}

{{/* host:port of the S3 endpoint, no scheme. */}}
{{- define "videop2r.s3.endpoint" -}}
{{- if .Values.s3.external.enabled -}}
{{- .Values.s3.external.endpoint -}}
{{- else -}}
{{- printf "%s.%s.svc:9000" (include "videop2r.componentName" (dict "root" . "component" "minio")) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "videop2r.s3.secure" -}}
{{- if .Values.s3.external.enabled }}{{ .Values.s3.external.secure }}{{ else }}false{{ end -}}
{{- end -}}

{{- define "videop2r.s3.url" -}}
{{- printf "%s://%s" (ternary "https" "http" (eq (include "videop2r.s3.secure" .) "true")) (include "videop2r.s3.endpoint" .) -}}
{{- end -}}

{{/* Environment that gives a container the store: credentials from the Secret, endpoint, region. */}}
{{- define "videop2r.s3.env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "videop2r.s3.secretName" . }}
      key: {{ include "videop2r.s3.accessKeyIdKey" . }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "videop2r.s3.secretName" . }}
      key: {{ include "videop2r.s3.secretAccessKeyKey" . }}
- name: S3_ENDPOINT
  value: {{ include "videop2r.s3.endpoint" . | quote }}
- name: AWS_ENDPOINT_URL
  value: {{ include "videop2r.s3.url" . | quote }}
{{- with .Values.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* ------------------------------------------------------------------- judge wiring */}}

{{/* external | llm | none: where reward-judge sends its judge calls. */}}
{{- define "videop2r.judge.mode" -}}
{{- if and .Values.rewardJudge.enabled (eq .Values.rewardJudge.judge "openai") -}}
{{- if .Values.judge.external.url -}}external
{{- else if .Values.judge.llm.enabled -}}llm
{{- else -}}
{{- fail "rewardJudge.judge=openai needs a judge LLM: judge.llm.enabled=true or judge.external.url" -}}
{{- end -}}
{{- else -}}none
{{- end -}}
{{- end -}}

{{- define "videop2r.judge.apiKeySecretName" -}}
{{- if .Values.judge.external.apiKey.existingSecret -}}
{{- .Values.judge.external.apiKey.existingSecret -}}
{{- else -}}
{{- include "videop2r.componentName" (dict "root" . "component" "judge-api-key") -}}
{{- end -}}
{{- end -}}

{{- define "videop2r.judge.hasApiKey" -}}
{{- if and (eq (include "videop2r.judge.mode" .) "external") (or .Values.judge.external.apiKey.existingSecret .Values.judge.external.apiKey.value) -}}true{{- end -}}
{{- end -}}

{{/* ------------------------------------------------------- reward-service auth */}}

{{- define "videop2r.rewardAuth.secretName" -}}
{{- default (include "videop2r.componentName" (dict "root" . "component" "reward-token")) .Values.rewardAuth.existingSecret -}}
{{- end -}}

{{/* The bearer token of the reward services, for the services and for their clients (Ray pods). */}}
{{- define "videop2r.rewardAuth.env" -}}
{{- if .Values.rewardAuth.enabled -}}
- name: {{ dig "reward" "auth_token_env" "VIDEOP2R_REWARD_TOKEN" .Values.config }}
  valueFrom:
    secretKeyRef:
      name: {{ include "videop2r.rewardAuth.secretName" . }}
      key: {{ .Values.rewardAuth.key }}
{{- end -}}
{{- end -}}

{{/* ----------------------------------------------------------------- config tree */}}

{{- define "videop2r.serviceURL" -}}
{{- printf "http://%s.%s.svc:%v" (include "videop2r.componentName" (dict "root" .root "component" .component)) .root.Release.Namespace .port -}}
{{- end -}}

{{/* ------------------------------------------------------------- training inputs */}}

{{/* s3://<bucket>/<prefix>/<key>: where the jobs publish their outputs on the chart's store. */}}
{{- define "videop2r.storeURI" -}}
{{- trimSuffix "/" (printf "s3://%s/%s" .root.Values.s3.bucket (join "/" (compact (list (trimAll "/" .root.Values.s3.prefix) .key)))) -}}
{{- end -}}

{{- define "videop2r.training.sftModel" -}}
{{- default (include "videop2r.storeURI" (dict "root" . "key" "models/sft")) .Values.training.sftModel -}}
{{- end -}}

{{/* The jobs cannot start without data and a model: fail the render naming the value. */}}
{{- define "videop2r.training.check" -}}
{{- if .Values.rayCluster.enabled -}}
{{- if not (include "videop2r.s3.enabled" .) -}}
{{- fail "rayCluster.enabled needs the object store for data, checkpoints and models: minio.enabled or s3.external.enabled" -}}
{{- end -}}
{{- if not .Values.training.trainUri -}}
{{- fail "training.trainUri is required: the training shards (`videop2r data pack` output) on the store, e.g. s3://videop2r/data/train" -}}
{{- end -}}
{{- if not .Values.training.baseModel -}}
{{- fail "training.baseModel is required: the HF checkpoint SFT starts from, on the store, e.g. s3://videop2r/models/base" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* bucket/key the rollout servers mirror at start: rollout.model.s3Path, else training.baseModel. */}}
{{- define "videop2r.rollout.s3Path" -}}
{{- $path := .Values.rollout.model.s3Path | default (trimPrefix "s3://" .Values.training.baseModel) -}}
{{- if and (eq .Values.rollout.model.source "s3") (not $path) -}}
{{- fail "rollout.model.source=s3 needs rollout.model.s3Path or training.baseModel (the model the rollout servers load at start)" -}}
{{- end -}}
{{- $path -}}
{{- end -}}

{{/*
The videop2r config tree: the chart's wiring (service URLs, S3, metrics, training inputs and
outputs) with .Values.config merged over it, so that a key the user sets wins.
`videop2r.configTree` is the tree of PA-GRPO, eval and CoT (model.path = the SFT model);
`videop2r.sftConfigTree` the one of SFT (model.path = training.baseModel).
*/}}
{{- define "videop2r.configTree" -}}
{{- include "videop2r.configTreeFor" (dict "root" . "stage" "pa_grpo") -}}
{{- end -}}

{{- define "videop2r.sftConfigTree" -}}
{{- include "videop2r.configTreeFor" (dict "root" . "stage" "sft") -}}
{{- end -}}

{{- define "videop2r.configTreeFor" -}}
{{- $stage := .stage -}}
{{- with .root -}}
{{- $rollout := dict -}}
{{- if .Values.rollout.enabled -}}
{{- $_ := set $rollout "endpoints" (list (include "videop2r.serviceURL" (dict "root" . "component" "rollout" "port" .Values.rollout.port))) -}}
{{- /* SGLang pods decode and sample the video themselves from its source. */}}
{{- $_ := set $rollout "video_transport" "source" -}}
{{- if include "videop2r.sharedWeights.claim" . }}{{ $_ := set $rollout "weights_dir" (include "videop2r.sharedWeights.dir" .) }}{{ end -}}
{{- end -}}
{{- $reward := dict -}}
{{- if .Values.rewardAccuracy.enabled -}}
{{- $_ := set $reward "accuracy_endpoints" (list (include "videop2r.serviceURL" (dict "root" . "component" "reward-accuracy" "port" .Values.rewardAccuracy.port))) -}}
{{- end -}}
{{- if .Values.rewardJudge.enabled -}}
{{- $_ := set $reward "judge_endpoints" (list (include "videop2r.serviceURL" (dict "root" . "component" "reward-judge" "port" .Values.rewardJudge.port))) -}}
{{- $_ := set $reward "judge" .Values.rewardJudge.judge -}}
{{- end -}}
{{- $mode := include "videop2r.judge.mode" . -}}
{{- if eq $mode "external" -}}
{{- $_ := set $reward "judge_url" .Values.judge.external.url -}}
{{- with .Values.judge.external.model }}{{ $_ := set $reward "judge_model" . }}{{ end -}}
{{- else if eq $mode "llm" -}}
{{- $_ := set $reward "judge_url" (printf "%s/v1" (include "videop2r.serviceURL" (dict "root" . "component" "judge-llm" "port" .Values.judge.llm.port))) -}}
{{- $_ := set $reward "judge_model" .Values.judge.llm.servedModelName -}}
{{- end -}}
{{- $tree := dict "metrics" (dict "port" (int .Values.rayCluster.driverMetricsPort) "host" "0.0.0.0") -}}
{{- if $rollout }}{{ $_ := set $tree "rollout" $rollout }}{{ end -}}
{{- if $reward }}{{ $_ := set $tree "reward" $reward }}{{ end -}}
{{- if include "videop2r.s3.enabled" . -}}
{{- $storage := dict "uri" (trimSuffix "/" (printf "s3://%s/%s" .Values.s3.bucket .Values.s3.prefix)) "endpoint" (include "videop2r.s3.endpoint" .) "secure" (eq (include "videop2r.s3.secure" .) "true") -}}
{{- with .Values.s3.region }}{{ $_ := set $storage "region" . }}{{ end -}}
{{- $_ := set $tree "storage" $storage -}}
{{- end -}}
{{- if .Values.rayCluster.enabled -}}
{{- include "videop2r.training.check" . -}}
{{- $training := .Values.training -}}
{{- $sftModel := include "videop2r.training.sftModel" . -}}
{{- $_ := set $tree "data" (dict "train_uri" $training.trainUri "eval_uri" ($training.evalUri | default nil)) -}}
{{- $_ := set $tree "model" (dict "path" (ternary $training.baseModel $sftModel (eq $stage "sft"))) -}}
{{- /* Every GPU of the learner group holds one FSDP2 shard; a CPU learner runs one worker per pod. */}}
{{- $learner := .Values.rayCluster.learner -}}
{{- $workers := mul (max 1 (int $learner.gpusPerWorker)) (int $learner.replicas) -}}
{{- /* Outputs on the store, where the next stage and the rollout servers can read them. */}}
{{- $trainer := dict "output_path" (include "videop2r.storeURI" (dict "root" . "key" "models/pa-grpo")) "sft" (dict "output_path" $sftModel) -}}
{{- $_ := set $tree "trainer" $trainer -}}
{{- $_ := set $tree "learner" (dict "num_workers" $workers) -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $tree (deepCopy .Values.config)) -}}
{{- end -}}
{{- end -}}

{{- define "videop2r.configPath" -}}/etc/videop2r/videop2r.yaml{{- end -}}

{{/* ------------------------------------------------------------- model download */}}

{{/*
Init container that mirrors an HF checkpoint from the store into the `model` emptyDir.
Call with (dict "root" $ "s3Path" "bucket/key").
*/}}
{{- define "videop2r.modelFetchContainer" -}}
- name: fetch-model
  image: {{ include "videop2r.image" (dict "root" .root "image" .root.Values.minio.mcImage) }}
  imagePullPolicy: {{ .root.Values.minio.mcImage.pullPolicy }}
  command: ["/bin/sh", "-ec"]
  args:
    - |
      # Wait, never fail: the store may still be starting and the model not uploaded yet
      # (a failing init container would crash-loop; the pod just stays not ready until then).
      until mc --config-dir /tmp/mc alias set store "$AWS_ENDPOINT_URL" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null 2>&1; do
        echo "waiting for the store at $AWS_ENDPOINT_URL"; sleep 10
      done
      until mc --config-dir /tmp/mc stat "store/$MODEL_S3_PATH/config.json" >/dev/null 2>&1; do
        echo "waiting for the model: upload an HF checkpoint to s3://$MODEL_S3_PATH/ (config.json first missing)"; sleep 30
      done
      mc --config-dir /tmp/mc mirror --overwrite "store/$MODEL_S3_PATH" /models/model
  env:
    {{- include "videop2r.s3.env" .root | nindent 4 }}
    - name: MODEL_S3_PATH
      value: {{ .s3Path | quote }}
  resources:
    {{- toYaml .root.Values.toolResources | nindent 4 }}
  securityContext:
    {{- include "videop2r.containerSecurityContext" .root | nindent 4 }}
  volumeMounts:
    - name: model
      mountPath: /models
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{- define "videop2r.modelVolume" -}}
{{- if eq .source "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ required "model.claimName is required when model.source is pvc" .claimName }}
    readOnly: true
{{- else }}
- name: model
  emptyDir:
    sizeLimit: {{ .cacheSizeLimit }}
{{- end }}
{{- end -}}

{{- define "videop2r.modelPath" -}}
{{- if eq .source "pvc" -}}
{{- printf "/models/%s" .subPath | trimSuffix "/" -}}
{{- else -}}
/models/model
{{- end -}}
{{- end -}}
