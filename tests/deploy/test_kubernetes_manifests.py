"""deploy/kubernetes: valid Kubernetes objects that run what autopeft's own parsers accept.

Each object is validated by the ``kubernetes`` client's models (pydantic, unknown fields forbidden,
strict types, required fields) and must read back exactly as written, so a field in the wrong case
or a misspelt one fails. Where ``kubectl`` is installed (it carries kustomize), both installations
are built as ``kubectl apply -k`` would build them, and their references checked: secret keys,
volumes, services. The containers' arguments parse with ``autopeft worker``'s and ``autopeft
serve``'s parsers, and every variable of their environment is one autopeft reads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client
from pydantic import ValidationError

from autopeft.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
API_VERSIONS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "Service": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
}
INSTALLATIONS = {".": {"Deployment", "Service", "Job", "PersistentVolumeClaim", "Secret"}}
INSTALLATIONS["with-postgres"] = INSTALLATIONS["."] | {"StatefulSet"}


def api_object(doc: dict[str, Any]) -> Any:
    """The client's model of ``doc``; raises when the API would refuse it or read it otherwise."""
    assert doc.get("apiVersion") == API_VERSIONS[doc["kind"]], doc.get("apiVersion")
    model = getattr(client, "V1" + doc["kind"]).model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc, doc["kind"]
    return model


def kustomizations() -> list[Path]:
    return sorted(KUBE.rglob("kustomization.yaml"))


def resource_files(kustomization: Path) -> list[Path]:
    listed = yaml.safe_load(kustomization.read_text()).get("resources", [])
    return [kustomization.parent / r for r in listed if (kustomization.parent / r).is_file()]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


@cache
def autopeft_source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "autopeft").rglob("*.py"))


def assert_environment_is_read(c: dict[str, Any]) -> None:
    """Every variable is read by autopeft, or used by another ($(NAME) in the arguments or a value)."""
    words = " ".join(c.get("args", []) + [e.get("value", "") for e in c.get("env", [])])
    for var in c.get("env", []):
        name = var["name"]
        assert f'"{name}"' in autopeft_source() or f"$({name})" in words, f"{c['name']}: nothing reads ${name}"


def test_every_kubernetes_manifest_validates_against_the_api_models():
    checked = []
    for kustomization in kustomizations():
        for path in resource_files(kustomization):
            for doc in documents(path):
                api_object(doc)
                checked.append(doc["kind"])
    assert sorted(checked) == sorted(
        ["Deployment", "Service", "PersistentVolumeClaim", "Job", "StatefulSet", "Service"]
    )

    job = documents(KUBE / "base" / "workers.yaml")[0]  # the check can fail: a misspelt field, a number as text
    job["spec"]["template"]["spec"]["containers"][0]["arg"] = ["worker"]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        api_object(job)
    job = documents(KUBE / "base" / "workers.yaml")[0]
    job["spec"]["parallelism"] = "4"
    with pytest.raises(ValidationError, match="valid integer"):
        api_object(job)


def test_the_kubernetes_worker_job_runs_autopeft_worker_on_one_gpu_per_pod_until_idle():
    job = only(documents(KUBE / "base" / "workers.yaml"), "Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"] >= 1
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] >= 60  # time to give back
    worker = container(job, "worker")
    assert worker["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert worker["command"] == ["autopeft"]

    args = build_parser().parse_args(worker["args"])
    assert args.command == "worker" and args.device == "cuda" and args.exit_when_idle > 0
    assert args.worker_id == "$(POD_NAME)" and args.api_key is None  # the key comes from the environment
    services = documents(KUBE / "base" / "server.yaml")
    server = urlsplit(args.server)
    assert server.hostname == only(services, "Service")["metadata"]["name"]
    assert server.port == only(services, "Service")["spec"]["ports"][0]["port"]
    serve = build_parser().parse_args(container(only(services, "Deployment"), "server")["args"])
    assert server.hostname in serve.allowed_hosts  # the server answers to the name the workers use (issue 27)

    mounts = {m["name"]: m for m in worker["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    data = [m for name, m in mounts.items() if "persistentVolumeClaim" in volumes[name]]
    assert data and all(m.get("readOnly") for m in data)
    for folder in args.data:  # the data roots are on the task data volume
        assert any(Path(folder).is_relative_to(m["mountPath"]) for m in data), folder
    claim = only(documents(KUBE / "base" / "data.yaml"), "PersistentVolumeClaim")
    assert {v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v} == {
        claim["metadata"]["name"]
    }
    env = {e["name"]: e for e in worker["env"]}
    assert env["AUTOPEFT_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "AUTOPEFT_API_KEY"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert_environment_is_read(worker)


def test_the_kubernetes_server_is_probed_on_health_and_reached_through_its_service():
    docs = documents(KUBE / "base" / "server.yaml")
    deployment, service = only(docs, "Deployment"), only(docs, "Service")
    server = container(deployment, "server")
    args = build_parser().parse_args(server["args"])
    assert server["command"] == ["autopeft"] and args.command == "serve" and args.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert list(ports.values()) == [args.port]
    for probe in ("readinessProbe", "livenessProbe"):  # with a Host the server answers to
        assert server[probe]["httpGet"] == {
            "path": "/api/v1/health",
            "port": next(iter(ports)),
            "httpHeaders": [{"name": "Host", "value": "localhost"}],
        }
    assert service["spec"]["ports"][0]["targetPort"] in ports
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    secret_keys = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in server["env"]}
    assert secret_keys == {"AUTOPEFT_DATABASE_URL": "AUTOPEFT_DATABASE_URL", "AUTOPEFT_API_KEY": "AUTOPEFT_API_KEY"}
    assert_environment_is_read(server)


# -- both installations, as `kubectl apply -k` builds them ---------------------------------------
def build(installation: str, tmp_path: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` on a copy, with each autopeft.env.example filled in as a user would."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (which carries kustomize) is not installed")
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    for example in copy.rglob("autopeft.env.example"):
        lines = [line for line in example.read_text().splitlines() if line and not line.startswith("#")]
        values = {
            "AUTOPEFT_DATABASE_URL": "postgresql://autopeft:pw@db.example:5432/autopeft",
            "AUTOPEFT_API_KEY": "test-key",
            "POSTGRES_PASSWORD": "pw0",
        }
        example.with_suffix("").write_text("".join(f"{line}{values[line.rstrip('=')]}\n" for line in lines))
    done = subprocess.run(
        ["kubectl", "kustomize", str(copy / installation)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


@pytest.mark.parametrize("installation", sorted(INSTALLATIONS))
def test_kustomize_builds_each_kubernetes_installation_into_valid_connected_objects(installation, tmp_path):
    docs = build(installation, tmp_path)
    for doc in docs:
        api_object(doc)
    assert {d["kind"] for d in docs} == INSTALLATIONS[installation]
    secret = only(docs, "Secret", "autopeft")
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    pods = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]
    for workload in pods:
        pod = workload["spec"]["template"]
        for c in pod["spec"]["containers"]:
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "autopeft" and ref["key"] in secret["data"], (c["name"], ref)
            if c.get("command") == ["autopeft"]:
                assert_environment_is_read(c)
        for volume in pod["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "autopeft"  # kubectl get -l finds all
    for service in (d for d in docs if d["kind"] == "Service"):
        assert any(
            service["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
            for w in pods
            if w["kind"] != "Job"
        ), service["metadata"]["name"]

    server_env = {e["name"]: e for e in container(only(docs, "Deployment"), "server")["env"]}
    if installation == "with-postgres":  # the server's database is the StatefulSet, through its Service
        url = urlsplit(re.sub(r"\$\(\w+\)", "x", server_env["AUTOPEFT_DATABASE_URL"]["value"]))
        postgres = only(docs, "StatefulSet")
        service = only(docs, "Service", url.hostname)
        assert service["spec"]["selector"].items() <= postgres["spec"]["template"]["metadata"]["labels"].items()
        assert (
            url.port
            == service["spec"]["ports"][0]["port"]
            == container(postgres, "postgres")["ports"][0]["containerPort"]
        )
        names = list(server_env)
        assert names.index("POSTGRES_PASSWORD") < names.index("AUTOPEFT_DATABASE_URL")  # $(...) needs it first
    else:
        assert server_env["AUTOPEFT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "autopeft"
