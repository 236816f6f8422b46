# Celery worker for GPU nodes: decodes with PyAV (VIDEOAPI_DECODER=auto takes NVDEC where the nvdec extra and a
# GPU are there), talks to the node's Triton over gRPC.
# CUDA userspace is there for GPU-side decoding work; inference itself runs in Triton.
# Installs the wheel `make wheel` builds (dist/) with the worker's extra, the one package every image gets;
# dist/ is bound for that step only (BuildKit), so the image holds the installed package, not the wheel too.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN --mount=type=bind,source=dist,target=/tmp/dist \
    pip install --no-cache-dir "/tmp/dist/videoapi-0.1.0-py3-none-any.whl[worker]"
USER 10001
# JSON logs (job and trace ids on each line); the pool processes' metrics meet here, served on 9808
ENV VIDEOAPI_LOG_FORMAT=json PROMETHEUS_MULTIPROC_DIR=/tmp/videoapi-metrics VIDEOAPI_WORKER_METRICS_PORT=9808
EXPOSE 9808
# One task at a time per process: jobs are long; scale with replicas and --concurrency.
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "shots", "--concurrency", "4", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
