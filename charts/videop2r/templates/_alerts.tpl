{{/*
The alert rules, one source for the PrometheusRule and for infra/prometheus/alerts.yaml
(rendered from this template with the default values by infra/prometheus/render-alerts.sh;
promtool checks and unit-tests that file). Every metric is one of videop2r/metrics.py CATALOG,
besides Prometheus' own `up`.
*/}}
{{- define "videop2r.alertGroups" -}}
{{- $r := .Values.monitoring.prometheusRule -}}
- name: videop2r.reward-services
  rules:
    - alert: VideoP2RRewardServiceDown
      expr: sum by (namespace, job) (up{job=~".*reward-(accuracy|judge)"}) == 0
      for: {{ $r.rewardServiceDownFor }}
      labels:
        severity: critical
      annotations:
        summary: "{{ "{{ $labels.job }}" }} has no healthy pod"
        description: "Every scrape target of {{ "{{ $labels.job }}" }} in {{ "{{ $labels.namespace }}" }} has been down for {{ $r.rewardServiceDownFor }}: training steps cannot be scored."
    - alert: VideoP2RJudgeErrorRate
      expr: |-
        sum by (judge) (rate(videop2r_judge_verdicts_total{verdict="error"}[5m]))
          / sum by (judge) (rate(videop2r_judge_verdicts_total[5m]))
          > {{ $r.judgeErrorRatio }}
      for: 10m
      labels:
        severity: warning
      annotations:
        summary: "Judge {{ "{{ $labels.judge }}" }} fails {{ "{{ $value | humanizePercentage }}" }} of its verdicts"
        description: "More than {{ mulf $r.judgeErrorRatio 100 }}% of perception verdicts of judge {{ "{{ $labels.judge }}" }} are errors (judge LLM down, timeouts, unparsable answers); their perception rewards count as 0."
- name: videop2r.training
  rules:
    - alert: VideoP2RTrainingStepStalled
      expr: changes(videop2r_train_step[{{ $r.stepStalledMinutes }}m]) == 0
      for: {{ $r.stepStalledMinutes }}m
      labels:
        severity: warning
      annotations:
        summary: "Run {{ "{{ $labels.run }}" }} has not finished a step for {{ $r.stepStalledMinutes }} minutes"
        description: "videop2r_train_step of run {{ "{{ $labels.run }}" }} (stage {{ "{{ $labels.stage }}" }}) has not changed for {{ $r.stepStalledMinutes }} minutes: check the rollout and reward services and the learner pods."
    - alert: VideoP2RAdvantageCollapse
      expr: max by (run, process) (videop2r_advantage_collapse_fraction) > {{ $r.advantageCollapseFraction }}
      for: {{ $r.advantageCollapseFor }}
      labels:
        severity: warning
      annotations:
        summary: "{{ "{{ $labels.process }}" }} advantages of run {{ "{{ $labels.run }}" }} collapsed"
        description: "{{ "{{ $value | humanizePercentage }}" }} of the groups have zero {{ "{{ $labels.process }}" }} reward spread (all rollouts scored alike), so they give no gradient: the task is too easy or too hard, or a reward is broken."
- name: videop2r.rollout
  rules:
    - alert: VideoP2RRolloutLearnerMismatch
      expr: max by (run) (videop2r_rollout_logprob_abs_diff) > {{ $r.logprobGapThreshold }}
      for: {{ $r.logprobGapFor }}
      labels:
        severity: critical
      annotations:
        summary: "Rollout and learner disagree on the tokens of run {{ "{{ $labels.run }}" }}"
        description: "Mean |rollout log p - learner log p| over the same tokens is {{ "{{ $value | printf `%.3f` }}" }} (alert above {{ $r.logprobGapThreshold }}): the rollout engine may drop the video or generate with stale weights, so the run trains on another policy's samples."
{{- end -}}
