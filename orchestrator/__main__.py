"""``python -m orchestrator``: run the scheduling loop until SIGTERM or SIGINT.

Options override the ``DINO_ORCH_*`` environment (see :mod:`orchestrator.settings`).
"""

from __future__ import annotations

import argparse
import logging
import threading

from orchestrator.home_lock import LocalRayLockedError
from orchestrator.lifeline import die_with_parent
from orchestrator.loop import run_orchestrator
from orchestrator.settings import OrchestratorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__)
    parser.add_argument("--database-url", help="default: DINO_DATABASE_URL or <DINO_HOME>/dino.db")
    parser.add_argument("--ray-address", help="default: RAY_ADDRESS, else start a local Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray")
    parser.add_argument("--job-fn", help="'module:function' run per attempt (tests)")
    parser.add_argument("--poll-interval-s", type=float)
    parser.add_argument(
        "--parent-pid", type=int, help="stop (and stop the local Ray) when this process exits"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = OrchestratorSettings.from_env(
        database_url=args.database_url,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        job_fn=args.job_fn,
        poll_interval_s=args.poll_interval_s,
    )
    stop = threading.Event()
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid, stop.set)
    try:
        run_orchestrator(stop, settings, handle_signals=True)
    except LocalRayLockedError as err:
        raise SystemExit(f"orchestrator: {err}") from None


if __name__ == "__main__":
    main()
