"""Gunicorn for the API as a long-lived container service: Uvicorn workers over the same FastAPI app.

Run: gunicorn -c infra/api/gunicorn.conf.py functions.asgi:app
"""

import multiprocessing
import os
import shutil

bind = os.environ.get("VIDEOAPI_API_BIND", "0.0.0.0:8080")
worker_class = "uvicorn.workers.UvicornWorker"
workers = int(os.environ.get("VIDEOAPI_API_WORKERS", multiprocessing.cpu_count() * 2 + 1))
timeout = 60  # requests are short: uploads go straight to S3
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# X-API-Key never reaches the access log: only method, path, status and timing are logged.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Metrics: the Uvicorn workers write their samples to files in one directory (set before they import
# prometheus_client); the master serves the sum on a port of its own, which the public Service does not expose.
metrics_port = int(os.environ.get("VIDEOAPI_API_METRICS_PORT", "9808"))  # 0: no metrics port
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "videoapi-api-metrics")
)


def on_starting(server):
    # emptied before anything imports prometheus_client: a restart must not add the last run's counts
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def when_ready(server):
    if not metrics_port:
        return
    from videoapi.adapters.queue import QUEUE
    from videoapi.domain.jobs import JobStore
    from videoapi.observability.metrics import QueueDepthCollector, serve
    from videoapi.settings import get_settings

    store = JobStore.from_url(get_settings().redis_url)
    port = serve(metrics_port, QueueDepthCollector(store.redis, QUEUE))
    server.log.info("metrics at http://0.0.0.0:%d/metrics", port)


def child_exit(server, worker):
    from videoapi.observability.metrics import mark_process_dead

    mark_process_dead(worker.pid)
