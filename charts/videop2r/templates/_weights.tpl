{{/*
The shared weights volume: the learner's rank 0 exports each weight version into
<mountPath>/<subdir>/v<N>/ (config rollout.weights_dir) and every SGLang rollout pod loads that
local path through /update_weights_from_disk (SGLang reads a directory on its own pod, never
s3://). Mounted read-write on the Ray pods (learner and driver), read-only on the rollout pods.
*/}}

{{/* The claim of the shared weights volume: sharedWeights.claimName, the chart's own claim, or "". */}}
{{- define "videop2r.sharedWeights.claim" -}}
{{- if .Values.sharedWeights.claimName -}}
{{- .Values.sharedWeights.claimName -}}
{{- else if and .Values.sharedWeights.create .Values.rollout.enabled -}}
{{- include "videop2r.componentName" (dict "root" . "component" "weights") -}}
{{- end -}}
{{- end -}}

{{/* rollout.weights_dir as the pods see it. */}}
{{- define "videop2r.sharedWeights.dir" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.sharedWeights.mountPath) (trimAll "/" .Values.sharedWeights.subdir) -}}
{{- end -}}

{{/* SGLang rollout pods cannot take a weight update without the shared volume: refuse to install. */}}
{{- define "videop2r.sharedWeights.check" -}}
{{- if and .Values.rollout.enabled (not (include "videop2r.sharedWeights.claim" .)) -}}
{{- fail "rollout.enabled (SGLang rollout pods) needs the shared weights volume: SGLang's /update_weights_from_disk loads a directory on its own pod, so the learner must export where the pods can read. Set sharedWeights.claimName to an existing ReadWriteMany PersistentVolumeClaim, or sharedWeights.create=true (the chart creates one)." -}}
{{- end -}}
{{- end -}}
