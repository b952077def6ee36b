"""The status KubeRay writes on a RayJob, read through pydantic (fields it does not know are kept out)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# KubeRay: IsJobDeploymentTerminal is Complete|Failed; ValidationFailed never moves on either.
TERMINAL_DEPLOYMENT = frozenset({"Complete", "Failed", "ValidationFailed"})
TERMINAL_JOB = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class RayJobStatus(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    job_status: str = Field("", alias="jobStatus")
    deployment_status: str = Field("", alias="jobDeploymentStatus")
    reason: str = ""
    message: str = ""
    job_id: str = Field("", alias="jobId")
    cluster: str = Field("", alias="rayClusterName")
    dashboard_url: str = Field("", alias="dashboardURL")
    start_time: str = Field("", alias="startTime")
    end_time: str = Field("", alias="endTime")
    failed: int = 0
    succeeded: int = 0

    @property
    def finished(self) -> bool:
        return self.deployment_status in TERMINAL_DEPLOYMENT

    @property
    def ok(self) -> bool:
        return self.deployment_status == "Complete" and self.job_status == "SUCCEEDED"

    def summary(self) -> str:
        state = f"{self.deployment_status or 'New'}/{self.job_status or '-'}"
        return f"{state}{f' ({self.reason})' if self.reason else ''}{f': {self.message}' if self.message else ''}"


def status_of(job: dict[str, Any]) -> RayJobStatus:
    """The parsed `.status` of a RayJob object (empty before the operator has seen it)."""
    return RayJobStatus.model_validate(job.get("status") or {})
