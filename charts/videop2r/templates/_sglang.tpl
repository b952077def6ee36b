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
        {{- include "videop2r.modelFetchContainer" (dict "root" $root "model" $spec.model) | nindent 8 }}
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
            {{- with $spec.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $spec.port }}
              protocol: TCP
          # Loading the weights and capturing CUDA graphs takes minutes: the startup probe gives
          # it up to 30 minutes before liveness takes over.
          startupProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 10
            failureThreshold: 180
          readinessProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 30
            timeoutSeconds: 10
            failureThreshold: 5
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
            {{- if and (eq .component "rollout") $root.Values.sharedWeights.claimName }}
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
        {{- if and (eq .component "rollout") $root.Values.sharedWeights.claimName }}
        - name: shared-weights
          persistentVolumeClaim:
            claimName: {{ $root.Values.sharedWeights.claimName }}
        {{- end }}
{{- end -}}
