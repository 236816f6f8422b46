# The API as a container service: Gunicorn + Uvicorn workers over functions.asgi:app.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY videoapi/ videoapi/
COPY functions/ functions/
COPY workers/ workers/
COPY infra/api/gunicorn.conf.py infra/api/gunicorn.conf.py
RUN pip install --no-cache-dir . "gunicorn>=22"
USER 10001
# JSON logs (job and trace ids on each line); metrics on 9808 from Gunicorn's master (gunicorn.conf.py)
ENV VIDEOAPI_LOG_FORMAT=json PROMETHEUS_MULTIPROC_DIR=/tmp/videoapi-api-metrics VIDEOAPI_API_METRICS_PORT=9808
EXPOSE 8080 9808
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v1/health', timeout=2)"
CMD ["gunicorn", "-c", "infra/api/gunicorn.conf.py", "functions.asgi:app"]
