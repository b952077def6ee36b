"""The HTTP service boundary shared by every client of the project's services.

- `videop2r.http.pool`: `EndpointPool`, the endpoints of one service (least-loaded choice,
  cool-down, out of rotation, failover, re-resolution of headless Service names);
- `videop2r.http.retry`: `RetryPolicy`, the one retryable-status rule and backoff;
- `videop2r.http.errors`: `RequestRefused` (4xx) / `EndpointUnavailable` / `ProtocolError`;
- `videop2r.http.resolution`: `expand_endpoints`, `EndpointSet`, `reconcile`.

Its clients: `videop2r.rollout.client.RolloutClient`, `videop2r.rewards.client.RewardClient`,
`videop2r.eval.chat_client.ChatClient`, `videop2r.rewards.judges.openai_judge.OpenAIJudge`.
"""

from videop2r.http.errors import EndpointError, EndpointUnavailable, Failure, ProtocolError, RequestRefused
from videop2r.http.pool import Endpoint, EndpointPool
from videop2r.http.resolution import EndpointSet, expand_endpoints
from videop2r.http.retry import RetryPolicy, is_retryable

__all__ = [
    "Endpoint",
    "EndpointError",
    "EndpointPool",
    "EndpointSet",
    "EndpointUnavailable",
    "Failure",
    "ProtocolError",
    "RequestRefused",
    "RetryPolicy",
    "expand_endpoints",
    "is_retryable",
]
