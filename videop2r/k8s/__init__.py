"""Kubernetes: RayJob manifests and their submission (`videop2r submit`, `videop2r jobs`), RayJob
status, CRD structural-schema validation. (Fan-out over the pods of a headless Service is
`videop2r.http.resolution`.)"""
