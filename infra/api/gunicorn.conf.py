"""Gunicorn for the API as a long-lived container service: Uvicorn workers over the same FastAPI app.

Run: gunicorn -c infra/api/gunicorn.conf.py functions.local:app
"""

import multiprocessing
import os

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
