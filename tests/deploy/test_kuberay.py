"""deploy/kuberay/*.yaml: required Kubernetes fields, the RayCluster's groups, autoscaler and
token auth, and that the API, MLflow and Ray objects point at each other correctly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deployfiles import KUBERAY, kube_docs, kube_objects, pod_containers

EXPECTED_FILES = {"raycluster.yaml", "api.yaml", "mlflow.yaml", "storage.yaml"}


def _by_name(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in kube_objects(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    (rc,) = kube_objects("RayCluster")
    return rc


def test_every_object_has_the_required_top_level_fields() -> None:
    assert {p.name for p in KUBERAY.glob("*.yaml")} == EXPECTED_FILES
    docs = kube_docs()
    assert docs
    for doc in docs:
        for field in ("apiVersion", "kind", "metadata", "spec"):
            assert field in doc, f"{doc.get('kind')} {doc.get('metadata')} lacks {field}"
        assert doc["metadata"].get("name"), f"{doc['kind']} has no metadata.name"
    versions = {d["kind"]: d["apiVersion"] for d in docs}
    assert versions == {
        "RayCluster": "ray.io/v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "PersistentVolumeClaim": "v1",
    }


def test_raycluster_groups(cluster: dict[str, Any]) -> None:
    spec = cluster["spec"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0", "no job may land on the head"
    assert "labels" not in head["rayStartParams"], "KubeRay rejects labels in rayStartParams"
    workers = spec["workerGroupSpecs"]
    assert workers, "no worker group"
    for group in workers:
        assert 0 <= group["minReplicas"] <= group["maxReplicas"], group["groupName"]
        replicas = group.get("replicas", group["minReplicas"])
        assert group["minReplicas"] <= replicas <= group["maxReplicas"], group["groupName"]
        assert "labels" not in group["rayStartParams"]
        (container,) = group["template"]["spec"]["containers"]
        limits = container["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, f"group {group['groupName']} has no GPU"
        tolerations = group["template"]["spec"].get("tolerations", [])
        assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


def test_autoscaler_v2_and_token_auth(cluster: dict[str, Any]) -> None:
    import ray

    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["version"] == "v2"
    for container in pod_containers(cluster):
        # KubeRay refuses the env var together with autoscalerOptions.version.
        assert "RAY_enable_autoscaler_v2" not in _env(container)
    assert spec["authOptions"] == {"mode": "token", "secretName": "dino-ray-auth"}
    assert spec["rayVersion"] == ray.__version__, "rayVersion must equal the image's ray"


def test_api_reaches_ray_with_the_clusters_token_and_service(cluster: dict[str, Any]) -> None:
    (api,) = pod_containers(_by_name("Deployment", "dino-api"))
    env = _env(api)
    assert env["RAY_ADDRESS"] == f"{cluster['metadata']['name']}-head-svc:6379"
    assert env["RAY_AUTH_MODE"] == "token"
    ref = env["RAY_AUTH_TOKEN"]["secretKeyRef"]
    assert ref == {"name": cluster["spec"]["authOptions"]["secretName"], "key": "auth_token"}
    assert env["DINO_DATABASE_URL"]["secretKeyRef"]["name"] == "dino-db"
    assert api["args"][:3] == ["with-ray", "dino", "serve"]


def test_api_and_mlflow_services_match_their_containers() -> None:
    api_dep = _by_name("Deployment", "dino-api")
    assert api_dep["spec"]["replicas"] == 1
    (api,) = pod_containers(api_dep)
    port = int(api["args"][api["args"].index("--port") + 1])
    assert api["ports"][0]["containerPort"] == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"]["path"] == "/healthz", probe
    svc = _by_name("Service", "dino-api")
    assert svc["spec"]["selector"] == api_dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["port"] == port

    ml_dep = _by_name("Deployment", "dino-mlflow")
    (ml,) = pod_containers(ml_dep)
    ml_port = int(ml["args"][ml["args"].index("--port") + 1])
    ml_svc = _by_name("Service", "dino-mlflow")
    assert ml_svc["spec"]["selector"] == ml_dep["spec"]["selector"]["matchLabels"]
    assert (
        _env(api)["MLFLOW_TRACKING_URI"]
        == f"http://dino-mlflow:{ml_svc['spec']['ports'][0]['port']}"
    )
    assert ml_svc["spec"]["ports"][0]["port"] == ml_port == 5000
    assert ml["readinessProbe"]["httpGet"]["path"] == "/health"
    from mlflow.server.security_utils import is_allowed_host_header

    hosts = _env(ml)["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for host in ("dino-mlflow:5000", "dino-mlflow.dino.svc.cluster.local:5000", "localhost:5000"):
        assert is_allowed_host_header(hosts, host), host


def test_volumes_exist_and_checkpoints_are_shared_at_one_path(cluster: dict[str, Any]) -> None:
    claims = {p["metadata"]["name"]: p for p in kube_objects("PersistentVolumeClaim")}
    assert claims["dino-shared"]["spec"]["accessModes"] == ["ReadWriteMany"]
    pods = [
        cluster["spec"]["headGroupSpec"]["template"]["spec"],
        *(g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]),
        _by_name("Deployment", "dino-api")["spec"]["template"]["spec"],
        _by_name("Deployment", "dino-mlflow")["spec"]["template"]["spec"],
    ]
    for pod in pods:
        volumes = {v["name"]: v for v in pod["volumes"]}
        for v in volumes.values():
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"mount {mount['name']} has no volume"
    ray_pods = pods[:-1]
    for pod in ray_pods:
        (container,) = pod["containers"]
        shared = {
            m["mountPath"]
            for m in container["volumeMounts"]
            for v in pod["volumes"]
            if v["name"] == m["name"]
            and v.get("persistentVolumeClaim", {}).get("claimName") == "dino-shared"
        }
        assert shared == {"/shared"}
        assert _env(container).get("DINO_STORAGE_URI", "/shared/jobs").startswith("/shared/")


def test_pods_run_as_the_images_non_root_user() -> None:
    for obj in [*kube_objects("Deployment"), *kube_objects("RayCluster")]:
        if obj["kind"] == "RayCluster":
            specs = [obj["spec"]["headGroupSpec"]["template"]["spec"]] + [
                g["template"]["spec"] for g in obj["spec"]["workerGroupSpecs"]
            ]
        else:
            specs = [obj["spec"]["template"]["spec"]]
        for spec in specs:
            ctx = spec["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 1000
            assert ctx["fsGroup"] == 1000, "PVCs must be writable by the image's user"
        for container in pod_containers(obj):
            assert container["image"] == "dino-orchestrator:latest"
