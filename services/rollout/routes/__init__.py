"""The rollout server's routes, one APIRouter per concern; `ROUTERS` in registration order.

Each handler is a module-level function that gets the server's `RolloutState` through the
`services.rollout.state.rollout_state` dependency.
"""

from services.rollout.routes import chat, generate, health, info, metrics, weights

ROUTERS = (health.router, info.router, generate.router, chat.router, weights.router, metrics.router)

__all__ = ["ROUTERS"]
