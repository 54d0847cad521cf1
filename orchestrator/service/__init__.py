"""The orchestrator's service layer: what the api (routes, CLI) calls. No raw SQL needed.

Every function takes the :class:`orchestrator.db.Database` first; user-facing reads and
writes take the calling :class:`UserView` (owner-scoped; admins see everything) and return
pydantic views. Errors are :mod:`orchestrator.errors` classes; a request that cannot be
queued raises an :class:`InvalidRequestError` listing every offending field, checked once per
request by :mod:`orchestrator.service.submit_check`.
"""

from orchestrator.service.grid_extend import extend_grid
from orchestrator.service.grids import (
    cancel_grid,
    experiment_for_grid,
    get_grid,
    grid_summary,
    list_grids,
    plan_grid,
    submit_grid,
    submit_grid_with_replay,
)
from orchestrator.service.idempotency import lookup_idempotency
from orchestrator.service.jobs import (
    cancel_job,
    get_job,
    job_attempts,
    job_events,
    list_jobs,
    submit_job,
    submit_job_with_replay,
)
from orchestrator.service.runnable import (
    MemoryPolicy,
    PathPolicy,
    fixed_cluster_nodes,
    largest_node_memory,
)
from orchestrator.service.stats import cluster_info, queue_stats
from orchestrator.service.users import (
    create_user,
    get_user,
    get_user_by_name,
    get_user_by_token_hash,
    hash_token,
    list_users,
    rotate_token,
)

__all__ = [
    "MemoryPolicy",
    "PathPolicy",
    "cancel_grid",
    "cancel_job",
    "cluster_info",
    "create_user",
    "experiment_for_grid",
    "extend_grid",
    "fixed_cluster_nodes",
    "get_grid",
    "get_job",
    "get_user",
    "get_user_by_name",
    "get_user_by_token_hash",
    "grid_summary",
    "hash_token",
    "job_attempts",
    "job_events",
    "largest_node_memory",
    "list_grids",
    "list_jobs",
    "list_users",
    "lookup_idempotency",
    "plan_grid",
    "queue_stats",
    "rotate_token",
    "submit_grid",
    "submit_grid_with_replay",
    "submit_job",
    "submit_job_with_replay",
]
