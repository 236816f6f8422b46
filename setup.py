"""The wheel and the sdist carry the built model; everything else about the package is in pyproject.toml.

`videoapi model build` writes model_repository/ (the ONNX file, the INT8 builds, Triton's configurations and
model.py). The sdist ships that folder as it is (MANIFEST.in); building the wheel copies it into the package, as
videoapi/model_repository/, where videoapi.settings finds it when there is no source tree around the package.
Without a built model both refuse to build: a wheel without one could detect nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import FileError

ROOT = Path(__file__).resolve().parent
REPOSITORY = ROOT / "model_repository"
# under the build's lib folder: videoapi.settings.PACKAGED_MODEL_REPOSITORY once installed
PACKAGED = Path("videoapi", "model_repository")
BUILT = ("transnetv2/config.pbtxt", "transnetv2/configs/gpu.pbtxt", "transnetv2/1/model.py", "transnetv2/1/model.onnx")
RUNTIME = ROOT / "videoapi" / "model" / "runtime.py"
RUNTIME_MODULE = "transnetv2_runtime.py"  # videoapi.model.runtime.RUNTIME_MODULE: model.py imports it
WITHOUT_MODEL = "VIDEOAPI_BUILD_WITHOUT_MODEL"  # 1: a package without the model (the Lambda functions: the API only)


def model_wanted() -> bool:
    """Whether the build carries the model, checked to be built first."""
    if os.environ.get(WITHOUT_MODEL, "") not in ("", "0"):
        return False
    missing = [name for name in BUILT if not (REPOSITORY / name).is_file()]
    if missing:
        raise FileError(
            f"the package carries the built model, and {REPOSITORY} has no {', '.join(missing)}: run "
            "`videoapi model build` first (it needs the export and int8 extras: `make install` does both), "
            f"or set {WITHOUT_MODEL}=1 for a package without the model"
        )
    return True


class BuildPyWithModel(build_py):
    """build_py, then model_repository/ copied into the package; an editable install reads the source tree's."""

    def run(self) -> None:
        if self.editable_mode:
            super().run()
            return
        wanted = model_wanted()  # before the build: a missing model fails it at once
        super().run()
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)  # a model left by an earlier build in build/ never comes along
        if not wanted:
            return
        shutil.copytree(REPOSITORY, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.new"))
        for model_py in target.glob("*/*/model.py"):  # the runtime model.py imports: this package's own
            shutil.copyfile(RUNTIME, model_py.with_name(RUNTIME_MODULE))


class SdistWithModel(sdist):
    """sdist, which MANIFEST.in gives model_repository/, only where the model is built."""

    def run(self) -> None:
        model_wanted()
        super().run()


setup(cmdclass={"build_py": BuildPyWithModel, "sdist": SdistWithModel})
