"""Which failures another attempt could fix: the worker's classification of an error.

The orchestrator retries only :data:`worker.contracts.RETRIED_FAILURES`; everything else ends
the job FAILED at its first attempt, with its error. In order of precedence (the error and
the errors it was raised from are all looked at):

* ``config``: the config or the evaluation options cannot be used (:class:`ConfigError`, a
  pydantic ``ValidationError``): the same job fails the same way every time.
* ``data``: the data set, a split or a checkpoint file is not there, or the data root left
  the allowed roots (:class:`FileNotFoundError`, which :class:`DataNotFoundError` is, and
  :class:`DataRootError`).
* ``infrastructure``: out of memory (host or accelerator), an I/O or network error
  (:class:`OSError`, :class:`ConnectionError`, :class:`TimeoutError`), a collective that
  lost a rank (``torch.distributed.DistBackendError``): the machine, not the job.
* ``code``: any other error before the attempt finished its first training step (an
  evaluation has no steps: always) -- a bug or an impossible combination, not bad luck.
* ``runtime``: any other error after at least one step of this attempt: config, data and
  code were fine a moment ago, so it is treated as transient and retried. A Ray Train group
  whose rank died before rank 0 reported counts as ``infrastructure``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from pydantic import ValidationError

from dino_core.config import ConfigError
from dino_core.data.roots import DataRootError
from worker.contracts import FailureKind

_INFRA_NAMES = frozenset({"OutOfMemoryError", "DistBackendError", "DistNetworkError"})


def _chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and what it was raised from or while handling (cycles cut)."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _is_infrastructure(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
        return True
    torch = sys.modules.get("torch")  # the worker imports it; no import just to classify
    if torch is not None and isinstance(err, torch.OutOfMemoryError):
        return True
    return any(c.__name__ in _INFRA_NAMES for c in type(err).__mro__)


def failure_kind(err: BaseException, *, otherwise: FailureKind = "code") -> FailureKind:
    """Why ``err`` failed the attempt: ``config``, ``data``, ``infrastructure`` by its type,
    else ``otherwise`` (``runtime`` once the attempt trained a step; ``infrastructure`` for a
    Ray Train rank that died before rank 0 could report)."""
    chain = list(_chain(err))
    if any(isinstance(e, ConfigError | ValidationError) for e in chain):
        return "config"
    if any(isinstance(e, FileNotFoundError | DataRootError) for e in chain):
        return "data"
    if any(_is_infrastructure(e) for e in chain):
        return "infrastructure"
    return otherwise
