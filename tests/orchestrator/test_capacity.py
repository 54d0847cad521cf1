"""Why a job can never run on a cluster's nodes (the waiting reason and the submit-time 422),
and the check of a request against a cluster that cannot grow."""

from __future__ import annotations

import pytest

from orchestrator.capacity import Shortfall, shortfall
from orchestrator.errors import JobValidationError
from orchestrator.schemas import JobRequest
from orchestrator.service.submit_check import check_job
from worker.contracts import Resources

NODES = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 4.0, "GPU": 1.0}]


@pytest.mark.parametrize(
    ("res", "expected"),
    [
        (Resources(num_cpus=4), None),
        (
            Resources(num_cpus=64),
            Shortfall("num_cpus", "needs 64 CPUs; the largest node has 4 CPUs"),
        ),
        (
            Resources(num_cpus=1, num_gpus=2),
            Shortfall("num_gpus", "needs 2 GPUs; the largest node has 1 GPU"),
        ),
        (
            Resources(num_cpus=2, num_workers=4),
            Shortfall("num_workers", "needs 4 workers of 2 CPUs; the nodes can hold 3 at most"),
        ),
        (
            Resources(custom={"tpu": 1}),
            Shortfall(
                "custom.tpu", "needs 1 of resource 'tpu'; the largest node has 0 of resource 'tpu'"
            ),
        ),
    ],
)
def test_shortfall_names_the_field_and_the_largest_node(
    res: Resources, expected: Shortfall | None
) -> None:
    assert shortfall(res, NODES) == expected


def test_a_job_no_node_of_a_fixed_cluster_holds_is_refused_naming_the_field() -> None:
    request = JobRequest(resources=Resources(num_cpus=64))
    check_job(request)  # no fixed cluster known: nothing to judge by
    with pytest.raises(JobValidationError) as err:
        check_job(request, cluster=NODES)
    (error,) = err.value.errors
    assert error.field == "resources.num_cpus"
    assert error.message.startswith("needs 64 CPUs; the largest node has 4 CPUs")
