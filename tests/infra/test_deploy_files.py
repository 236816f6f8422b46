"""infra/: container images, compose file and Kubernetes manifests, validated offline with the tools' schemas."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from videoapi.adapters.queue import QUEUE
from videoapi.settings import PROJECT_ROOT, Settings

INFRA = PROJECT_ROOT / "infra"
MANIFESTS = sorted((INFRA / "k8s").glob("*.yaml"))
SETTINGS_ENV = {f"VIDEOAPI_{name.upper()}" for name in Settings.model_fields} | {"REDIS_URL"}
DOCKERFILES = sorted((INFRA / "docker").glob("*.Dockerfile"))
VERSION = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
WHEEL = f"videoapi-{VERSION}-py3-none-any.whl"  # what `make wheel` writes to dist/ and the images install
SOURCE_TREE = {"videoapi", "functions", "workers", "local", "model_repository", "pyproject.toml", "setup.py", "."}


def documents():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            yield path.name, doc


def test_kubernetes_manifests_validate_against_the_api_schemas():
    checked = 0
    for _, doc in documents():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked below
        kubernetes_validate.validate(doc, "1.30", strict=True)
        checked += 1
    assert checked >= 7


def test_keda_scales_workers_on_the_celery_queue():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    scaled = docs[("ScaledObject", "worker")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker" and ("Deployment", "worker") in docs
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == QUEUE
    assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in docs
    assert scaled["spec"]["minReplicaCount"] >= 1 and scaled["spec"]["maxReplicaCount"] > 1


def test_scale_in_gives_a_draining_worker_its_grace_and_keda_waits_for_it():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    pod = docs[("Deployment", "worker")]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    grace_s = float(env.get("VIDEOAPI_SHUTDOWN_GRACE_S") or Settings().shutdown_grace_s)
    # the kubelet's SIGKILL comes after the task's grace plus room for a batch, the re-queue and Celery's exit
    assert pod["terminationGracePeriodSeconds"] >= grace_s + 15
    assert pod["terminationGracePeriodSeconds"] <= grace_s + 60  # not hours: a stuck pod still goes
    scaled = docs[("ScaledObject", "worker")]["spec"]
    scale_down = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    # a draining pod is gone before the next scale-in decision; the cooldown matches the scale-down window
    assert scale_down["stabilizationWindowSeconds"] >= 2 * pod["terminationGracePeriodSeconds"]
    assert scaled["cooldownPeriod"] == scale_down["stabilizationWindowSeconds"]
    assert all(p["periodSeconds"] >= pod["terminationGracePeriodSeconds"] for p in scale_down["policies"])
    cmd = DockerfileParser(str(INFRA / "docker" / "worker.Dockerfile")).cmd
    assert cmd.lstrip("[").split(",")[0].strip(' "') == "celery"  # exec form: celery is PID 1 and gets the SIGTERM


def test_workers_use_the_triton_on_their_own_node():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    triton = docs[("DaemonSet", "triton")]["spec"]["template"]["spec"]["containers"][0]
    grpc = next(p for p in triton["ports"] if p["name"] == "grpc")
    assert "--model-config-name=gpu" in triton["args"]
    worker = docs[("Deployment", "worker")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in worker["env"]}
    assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["VIDEOAPI_TRITON_URL"]["value"] == f"$(HOST_IP):{grpc['hostPort']}"


def test_triton_and_the_workers_see_every_gpu_of_the_node_and_the_workers_share_the_nodes_folder():
    """Any GPU count: Triton puts an instance on each GPU it sees; the workers spread over them by claims in the
    node's folder (videoapi.pipeline.gpus), which must be one folder for all the node's pods: a hostPath."""
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    triton = docs[("DaemonSet", "triton")]["spec"]["template"]["spec"]["containers"][0]
    worker_pod = docs[("Deployment", "worker")]["spec"]["template"]["spec"]
    worker = worker_pod["containers"][0]
    for container in (triton, worker):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})  # not one GPU of the plugin's
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert "video" in env["NVIDIA_DRIVER_CAPABILITIES"].split(",")  # NVDEC
    [mount] = [m for m in worker["volumeMounts"] if m["mountPath"] == env["VIDEOAPI_NODE_DIR"]]
    [volume] = [v for v in worker_pod["volumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"]["path"] == env["VIDEOAPI_NODE_DIR"]


def test_configuration_names_real_settings():
    names = set()
    for _, doc in documents():
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            names |= {e["name"] for e in container.get("env", []) if e["name"].startswith(("VIDEOAPI_", "REDIS"))}
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    for service in compose["services"].values():
        names |= {n for n in service.get("environment", {}) if n.startswith(("VIDEOAPI_", "REDIS"))}
    unknown = names - SETTINGS_ENV - {"VIDEOAPI_API_WORKERS", "VIDEOAPI_API_BIND"}  # the last two: gunicorn.conf.py
    assert not unknown


def test_compose_file_is_valid_compose_spec():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(INFRA / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_copy_what_exists_and_run_what_is_there(dockerfile: Path):
    parser = DockerfileParser(path=str(dockerfile))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    assert instructions[0]["instruction"] == "FROM"
    for ins in instructions:
        if ins["instruction"] == "COPY":
            *sources, _ = ins["value"].split()
            if sources[0].startswith("--from="):
                continue  # out of an earlier stage (the wheel's test below)
            for source in sources:
                if source.startswith("dist/"):  # written by `make wheel`, not kept in the tree
                    assert source == f"dist/{WHEEL}", f"{dockerfile.name}: COPY {source}: `make wheel` writes {WHEEL}"
                    continue
                assert (PROJECT_ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
                assert not source.startswith("local"), f"{dockerfile.name}: the emulator (local/) is not shipped"
    cmd = next(i["value"] for i in reversed(instructions) if i["instruction"] == "CMD")
    if "gunicorn" in cmd:
        assert "functions.asgi:app" in cmd and (PROJECT_ROOT / "infra/api/gunicorn.conf.py").exists()
    elif "celery" in cmd:
        assert "workers.celery_app" in cmd and f'"{QUEUE}"' in cmd
    else:
        assert "tritonserver" in cmd and "--model-config-name=gpu" in cmd
        assert (PROJECT_ROOT / "model_repository/transnetv2/configs/gpu.pbtxt").is_file()
    if "nvidia/cuda" not in parser.baseimage and "tritonserver" not in parser.baseimage:
        assert any(i["instruction"] == "USER" for i in instructions), "run as a non-root user"
    assert re.search(r":[\w.\-]+", parser.baseimage), "pin the base image"


def _wheel_installs(instructions: list[dict]) -> list[str]:
    """The RUN steps that pip-install dist/'s wheel: COPY'd into a folder first, or dist/ bound for the step
    (BuildKit's RUN --mount=type=bind)."""
    places, installs = set(), []
    for ins in instructions:
        words = shlex.split(ins["value"])
        if ins["instruction"] == "COPY" and words[0] == f"dist/{WHEEL}":
            places.add(words[-1].rstrip("/"))
        if ins["instruction"] == "RUN" and "pip install" in ins["value"]:
            mounts = [
                dict(o.split("=", 1) for o in w.removeprefix("--mount=").split(","))
                for w in words
                if w.startswith("--mount=")
            ]
            bound = {m["target"] for m in mounts if m.get("type") == "bind" and m.get("source") == "dist"}
            if any(w.split("[")[0] in {f"{place}/{WHEEL}" for place in places | bound} for w in words):
                installs.append(ins["value"])
    return installs


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_the_wheel_not_the_source_tree(dockerfile: Path):
    """Each image pip-installs the one wheel (the model inside, `make wheel`), never a copy of the source tree."""
    instructions = [i for i in DockerfileParser(path=str(dockerfile)).structure if i["instruction"] != "COMMENT"]
    for ins in instructions:
        if ins["instruction"] in ("COPY", "ADD") and not ins["value"].startswith("--from="):
            *sources, _ = ins["value"].split()
            tree = [source for source in sources if source.split("/")[0] in SOURCE_TREE]
            assert not tree, f"{dockerfile.name}: COPY {' '.join(tree)}: install the wheel (make wheel) instead"
        if ins["instruction"] == "RUN":
            assert not re.search(r"pip install[^&;]* \.(\s|$)", ins["value"]), f"{dockerfile.name}: pip install ."
    installs = _wheel_installs(instructions)
    assert len(installs) == 1, f"{dockerfile.name}: one `pip install` of dist/{WHEEL}, found {len(installs)}"
    if dockerfile.name == "triton.Dockerfile":
        # Triton's Python is older than the package's: the wheel goes into a first stage, its model into /models
        target = "/opt/videoapi"
        assert "--no-deps" in installs[0] and f"--target {target}" in installs[0]
        final = instructions[max(k for k, i in enumerate(instructions) if i["instruction"] == "FROM") :]
        copies = [i["value"].split() for i in final if i["instruction"] == "COPY"]
        wanted = [f"{target}/videoapi/model_repository/", "/models/"]
        assert any(c[0].startswith("--from=") and c[1:] == wanted for c in copies), "Triton serves the wheel's model"
    else:
        # the API: the api extra (Gunicorn, uvloop, httptools), the base's dependencies and no worker's
        extra = "[worker]" if dockerfile.name == "worker.Dockerfile" else "[api]"
        assert f"{WHEEL}{extra}" in installs[0]


def _dockerfile_env(name: str) -> dict[str, str]:
    return DockerfileParser(path=str(INFRA / "docker" / name)).envs


def test_prometheus_scrapes_the_api_the_workers_and_triton_on_their_metrics_ports():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents()}
    expected = {
        ("Deployment", "api"): int(_dockerfile_env("api.Dockerfile")["VIDEOAPI_API_METRICS_PORT"]),
        ("Deployment", "worker"): int(_dockerfile_env("worker.Dockerfile")["VIDEOAPI_WORKER_METRICS_PORT"]),
        ("DaemonSet", "triton"): 8002,  # tritonserver's default --metrics-port
    }
    for name, port in expected.items():
        pod = docs[name]["spec"]["template"]
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == port
        ports = {p["containerPort"]: p["name"] for p in pod["spec"]["containers"][0]["ports"]}
        assert ports.get(port) == "metrics", name
    # the API's public Service does not reach the metrics port
    assert {p["targetPort"] for p in docs[("Service", "api")]["spec"]["ports"]} == {8080}
    assert _dockerfile_env("worker.Dockerfile")["VIDEOAPI_WORKER_METRICS_PORT"] == str(Settings().worker_metrics_port)


@pytest.mark.parametrize("dockerfile", ["api.Dockerfile", "worker.Dockerfile"])
def test_images_log_json_and_gather_metrics_across_processes(dockerfile: str):
    env = _dockerfile_env(dockerfile)
    assert env["VIDEOAPI_LOG_FORMAT"] == "json" and env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def _exposed_names() -> set[str]:
    from prometheus_client import Counter, Histogram

    from videoapi.observability import metrics

    names = {"videoapi_queue_depth"}
    for metric in vars(metrics).values():
        if isinstance(metric, Counter):
            names.add(f"{metric._name}_total")
        elif isinstance(metric, Histogram):
            names |= {f"{metric._name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


# Triton's own metrics the dashboard reads, as the tritonserver here names them (its counters end in _total)
TRITON_METRICS = {"nv_gpu_utilization", "nv_inference_queue_duration_us_total", "nv_inference_request_success_total"}


def test_grafana_dashboard_shows_what_the_issue_asks_with_metrics_that_exist():
    import json

    dashboard = json.loads((INFRA / "grafana" / "videoapi-dashboard.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Jobs per second", "Queue wait", "Job duration", "Frames per second", "GPU utilisation", "Errors"):
        assert any(t.startswith(wanted) for t in titles), wanted
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"] and len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            used |= set(re.findall(r"\b(?:videoapi|nv)_[a-z_]+", target["expr"]))
    assert used - _exposed_names() - TRITON_METRICS == set()
    assert {"videoapi_job_queue_wait_seconds_bucket", "videoapi_frames_total", "nv_gpu_utilization"} <= used
