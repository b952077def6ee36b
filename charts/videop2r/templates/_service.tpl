{{/*
Objects the two reward services share, each called with
(dict "root" $ "component" "reward-judge" "spec" .Values.rewardJudge ...).
*/}}

{{/* Deployment of `videop2r serve <component> --port P <args>`; extra: "args", "env". */}}
{{- define "videop2r.reward.deployment" -}}
{{- $root := .root -}}
{{- $spec := .spec -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "videop2r.componentName" (dict "root" $root "component" .component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  {{- if not $spec.autoscaling.enabled }}
  replicas: {{ $spec.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "videop2r.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "videop2r.labels" (dict "root" $root "component" .component) | nindent 8 }}
      annotations:
        # Roll the pods when the config tree changes.
        checksum/config: {{ include "videop2r.configTree" $root | sha256sum }}
    spec:
      {{- include "videop2r.podDefaults" $root | nindent 6 }}
      {{- with include "videop2r.scheduling" $spec }}{{ . | trim | nindent 6 }}{{ end }}
      containers:
        - name: {{ .component }}
          image: {{ include "videop2r.image" (dict "root" $root "image" $root.Values.rewardImage) }}
          imagePullPolicy: {{ $root.Values.rewardImage.pullPolicy }}
          command: ["videop2r"]
          args:
            - serve
            - {{ .component }}
            - --host
            - "0.0.0.0"
            - --port
            - {{ $spec.port | quote }}
            - --config
            - {{ include "videop2r.configPath" $root }}
            {{- range .args }}
            - {{ . | quote }}
            {{- end }}
            {{- with $root.Values.serverLimits }}
            - {{ printf "server.header_timeout_s=%v" .headerTimeoutSeconds | quote }}
            - {{ printf "server.body_timeout_s=%v" .bodyTimeoutSeconds | quote }}
            - {{ printf "server.keep_alive_s=%v" .keepAliveSeconds | quote }}
            - {{ printf "server.max_connections=%v" (int .maxConnections) | quote }}
            - {{ printf "server.max_header_bytes=%v" (int .maxHeaderBytes) | quote }}
            - {{ printf "reward.max_body_bytes=%v" (int .maxBodyBytes) | quote }}
            {{- end }}
            {{- range $spec.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: HOME
              value: /tmp/home
            - name: HF_HOME
              value: /tmp/hf
            - name: HF_HUB_OFFLINE
              value: "1"
            {{- include "videop2r.rewardAuth.env" $root | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $spec.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $spec.port }}
              protocol: TCP
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
            periodSeconds: 15
            timeoutSeconds: 5
            failureThreshold: 4
          resources:
            {{- toYaml $spec.resources | nindent 12 }}
          securityContext:
            {{- include "videop2r.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/videop2r
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "videop2r.componentName" (dict "root" $root "component" "config") }}
        - name: tmp
          emptyDir: {}
{{- end -}}

{{/* ClusterIP Service on port `port`, named http. */}}
{{- define "videop2r.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "videop2r.componentName" (dict "root" .root "component" .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  type: ClusterIP
  {{- if .headless }}
  # Headless: DNS returns every ready pod, so the client spreads its requests over all of them
  # (it re-resolves the name periodically and after a failure: pods come and go).
  clusterIP: None
  publishNotReadyAddresses: false
  {{- end }}
  selector:
    {{- include "videop2r.selectorLabels" (dict "root" .root "component" .component) | nindent 4 }}
  ports:
    - name: http
      port: {{ .port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "videop2r.hpa" -}}
{{- $spec := .spec -}}
{{- $name := include "videop2r.componentName" (dict "root" .root "component" .component) -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $spec.autoscaling.minReplicas }}
  maxReplicas: {{ $spec.autoscaling.maxReplicas }}
  {{- $cpu := int (default 0 $spec.autoscaling.targetCPUUtilizationPercentage) }}
  {{- $inFlight := and .inFlightMetric (gt (float64 (default 0 $spec.autoscaling.targetInFlightPerPod)) 0.0) }}
  {{- if not (or $cpu $inFlight) }}
  {{- fail (printf "%s.autoscaling needs a metric: targetCPUUtilizationPercentage or targetInFlightPerPod above 0" .component) }}
  {{- end }}
  metrics:
    {{- if $cpu }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $cpu }}
    {{- end }}
    {{- if $inFlight }}
    # A per-pod custom metric (prometheus-adapter serves it from the pods' own /metrics).
    - type: Pods
      pods:
        metric:
          name: {{ .inFlightMetric }}
        target:
          type: AverageValue
          averageValue: {{ $spec.autoscaling.targetInFlightPerPod | quote }}
    {{- end }}
  behavior:
    # Scale up at once when rewards queue up; scale down slowly between training steps.
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end -}}

{{- define "videop2r.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "videop2r.componentName" (dict "root" .root "component" .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  maxUnavailable: {{ .spec.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "videop2r.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end -}}

{{/*
ServiceMonitor scraping /metrics on the Service port http. honorLabels keeps the code's own
`service`/`endpoint` labels instead of renaming them exported_*.
*/}}
{{- define "videop2r.servicemonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "videop2r.componentName" (dict "root" .root "component" .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" .root "component" .component) | nindent 4 }}
    {{- with .root.Values.monitoring.serviceMonitors.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "videop2r.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ .root.Release.Namespace }}
  endpoints:
    - port: http
      path: /metrics
      interval: {{ .root.Values.monitoring.serviceMonitors.interval }}
      honorLabels: true
{{- end -}}

{{/* NetworkPolicy admitting `peers` (NetworkPolicyPeers) and Prometheus to port http. */}}
{{- define "videop2r.networkpolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "videop2r.componentName" (dict "root" .root "component" .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "videop2r.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "videop2r.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        {{- toYaml .peers | nindent 8 }}
      ports:
        - port: {{ .port }}
          protocol: TCP
    {{- with .root.Values.networkPolicy.prometheus }}
    # Prometheus scrapes /metrics on the same port.
    - from:
        - {{- toYaml . | nindent 10 }}
      ports:
        - port: {{ $.port }}
          protocol: TCP
    {{- end }}
{{- end -}}
