{{/* Pieces of the Ray head and learner pods. */}}

{{- define "videop2r.ray.env" -}}
# The root filesystem is read-only: Ray's session dir and every cache live under /tmp.
- name: HOME
  value: /tmp/home
- name: XDG_CACHE_HOME
  value: /tmp/cache
- name: HF_HOME
  value: /tmp/hf
- name: TRITON_CACHE_DIR
  value: /tmp/cache/triton
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- if include "videop2r.s3.enabled" . }}
{{ include "videop2r.s3.env" . }}
{{- end }}
{{- with include "videop2r.rewardAuth.env" . }}
{{ . }}
{{- end }}
{{- with .Values.rayCluster.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "videop2r.ray.volumeMounts" -}}
- name: config
  mountPath: /etc/videop2r
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: dshm
  mountPath: /dev/shm
{{- if include "videop2r.sharedWeights.claim" . }}
# read-write: the learner's rank 0 exports weight versions here, the driver prunes old ones
- name: shared-weights
  mountPath: {{ .Values.sharedWeights.mountPath }}
{{- end }}
{{- end -}}

{{/* Call with (dict "root" $ "shmSize" "64Gi"). */}}
{{- define "videop2r.ray.volumes" -}}
- name: config
  configMap:
    name: {{ include "videop2r.componentName" (dict "root" .root "component" "config") }}
- name: tmp
  emptyDir: {}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .shmSize }}
{{- with include "videop2r.sharedWeights.claim" .root }}
- name: shared-weights
  persistentVolumeClaim:
    claimName: {{ . }}
{{- end }}
{{- end -}}
