{{/*
An SGLang server Deployment (rollout policy or judge LLM). Call with
(dict "root" $ "component" "rollout" "spec" .Values.rollout).
The weights come from a PVC or are mirrored from the store by an init container; the server
listens on one port for its native API (/generate, /update_weights_from_disk, /health), the
OpenAI-compatible API (/v1) and /metrics.
*/}}
{{- define "videop2r.sglang.deployment" -}}
{{- $root := .root -}}
{{- $spec := .spec -}}
{{- $gpu := and (eq $spec.device "cuda") (gt (int $spec.gpus) 0) -}}
{{- if eq .component "rollout" }}{{ include "videop2r.sharedWeights.check" $root }}{{ end -}}
{{- $weightsClaim := ternary (include "videop2r.sharedWeights.claim" $root) "" (eq .component "rollout") -}}
{{- if and (eq $spec.model.source "s3") (not (include "videop2r.s3.enabled" $root)) -}}
{{- fail (printf "%s.model.source=s3 needs the store: minio.enabled or s3.external.enabled" .component) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "videop2r.componentName" (dict "root" $root "component" .component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  replicas: {{ $spec.replicas }}
  # A new server loads the whole model before it is ready: replace one pod at a time.
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "videop2r.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "videop2r.labels" (dict "root" $root "component" .component) | nindent 8 }}
    spec:
      {{- include "videop2r.podDefaults" $root | nindent 6 }}
      {{- with include "videop2r.scheduling" $spec }}{{ . | trim | nindent 6 }}{{ end }}
      {{- if eq $spec.model.source "s3" }}
      initContainers:
        {{- $s3Path := ternary (include "videop2r.rollout.s3Path" $root) $spec.model.s3Path (eq .component "rollout") }}
        {{- if not $s3Path }}{{ fail (printf "%s.model.s3Path is required with model.source=s3" .component) }}{{ end }}
        {{- include "videop2r.modelFetchContainer" (dict "root" $root "s3Path" $s3Path) | nindent 8 }}
      {{- end }}
      containers:
        - name: sglang
          image: {{ include "videop2r.image" (dict "root" $root "image" $root.Values.sglangImage) }}
          imagePullPolicy: {{ $root.Values.sglangImage.pullPolicy }}
          command: ["python3", "-m", "sglang.launch_server"]
          args:
            - --model-path
            - {{ include "videop2r.modelPath" $spec.model | quote }}
            - --served-model-name
            - {{ $spec.servedModelName | quote }}
            - --host
            - "0.0.0.0"
            - --port
            - {{ $spec.port | quote }}
            - --tp-size
            - {{ max 1 (int $spec.gpus) | quote }}
            - --mem-fraction-static
            - {{ $spec.memFractionStatic | quote }}
            {{- if eq $spec.device "cpu" }}
            - --device
            - cpu
            {{- end }}
            {{- if $spec.enableMetrics }}
            - --enable-metrics
            {{- end }}
            {{- if eq .component "rollout" }}
            # Keep the frames the learner sampled (no resampling, no resizing): the rollout's visual
            # tokens must be the learner's, or the parity gate refuses to start.
            - --mm-process-config
            - {{ include "videop2r.rollout.mmProcessConfig" $root | quote }}
            {{- end }}
            {{- range $spec.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            # The image's home is not writable (read-only root filesystem): caches go to /tmp.
            - name: HOME
              value: /tmp/home
            - name: XDG_CACHE_HOME
              value: /tmp/cache
            - name: TRITON_CACHE_DIR
              value: /tmp/cache/triton
            - name: HF_HUB_OFFLINE
              value: "1"
            - name: SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION
              value: "false"
            - name: SGLANG_HEALTH_CHECK_TIMEOUT
              value: {{ $spec.probes.healthCheckTimeoutSeconds | quote }}
            {{- with $spec.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $spec.port }}
              protocol: TCP
          # SGLang's /health runs a one-token generation by default (waits up to
          # SGLANG_HEALTH_CHECK_TIMEOUT, and stalls behind a weight update); with
          # SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION=false it only reports start-up and shutdown.
          # Startup: the model load (and CUDA graph capture) may take up to 30 minutes.
          startupProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 180
          # Liveness never generates, so a long weight update does not restart the pod.
          livenessProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 30
            timeoutSeconds: 10
            failureThreshold: 5
          # Readiness generates one token; its timeout stays above SGLang's own health timeout.
          readinessProbe:
            httpGet:
              path: /health_generate
              port: http
            periodSeconds: {{ $spec.probes.readinessPeriodSeconds }}
            timeoutSeconds: {{ add (int $spec.probes.healthCheckTimeoutSeconds) 10 }}
            failureThreshold: {{ $spec.probes.readinessFailureThreshold }}
          resources:
            requests:
              {{- toYaml $spec.resources.requests | nindent 14 }}
              {{- if $gpu }}
              nvidia.com/gpu: {{ $spec.gpus }}
              {{- end }}
            limits:
              {{- toYaml $spec.resources.limits | nindent 14 }}
              {{- if $gpu }}
              nvidia.com/gpu: {{ $spec.gpus }}
              {{- end }}
          securityContext:
            {{- include "videop2r.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: model
              mountPath: /models
              readOnly: {{ eq $spec.model.source "pvc" }}
            - name: tmp
              mountPath: /tmp
            - name: dshm
              mountPath: /dev/shm
            {{- if $weightsClaim }}
            - name: shared-weights
              mountPath: {{ $root.Values.sharedWeights.mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        {{- include "videop2r.modelVolume" $spec.model | nindent 8 }}
        - name: tmp
          emptyDir: {}
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: {{ $spec.shmSize }}
        {{- if $weightsClaim }}
        - name: shared-weights
          persistentVolumeClaim:
            claimName: {{ $weightsClaim }}
        {{- end }}
{{- end -}}


{{/* SGLang's --mm-process-config from the run's data config (videop2r.rollout.sglang_release.mm_process_config;
     the defaults are DataConfig's, and tests/k8s checks the two agree for every value set). */}}
{{- define "videop2r.rollout.mmProcessConfig" -}}
{{- $d := (.Values.config | default dict).data | default dict -}}
{{- $v := dict "fps" (float64 (dig "fps" 2.0 $d)) "min_frames" (int (dig "min_frames" 4 $d)) "max_frames" (int (dig "max_frames" 16 $d)) "min_pixels" (int (dig "video_min_pixels" 100352 $d)) "max_pixels" (int (dig "video_max_pixels" 100352 $d)) -}}
{{- with (dig "video_total_pixels" nil $d) }}{{ $_ := set $v "total_pixels" (int .) }}{{ end -}}
{{- dict "video" $v | toJson -}}
{{- end -}}
