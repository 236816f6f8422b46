# Celery worker for GPU nodes: decodes with OpenCV, talks to the node's Triton over gRPC.
# CUDA userspace is there for GPU-side decoding work; inference itself runs in Triton.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY videoapi/ videoapi/
COPY functions/ functions/
COPY workers/ workers/
RUN pip install --no-cache-dir .
USER 10001
# JSON logs (job and trace ids on each line); the pool processes' metrics meet here, served on 9808
ENV VIDEOAPI_LOG_FORMAT=json PROMETHEUS_MULTIPROC_DIR=/tmp/videoapi-metrics VIDEOAPI_WORKER_METRICS_PORT=9808
EXPOSE 9808
# One task at a time per process: jobs are long; scale with replicas and --concurrency.
CMD ["celery", "-A", "workers.celery_app", "worker", "-Q", "shots", "--concurrency", "4", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
