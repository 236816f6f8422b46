# The API as a container service: Gunicorn + Uvicorn workers over functions.local:app.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY videoapi/ videoapi/
COPY functions/ functions/
COPY workers/ workers/
COPY local/ local/
COPY infra/api/gunicorn.conf.py infra/api/gunicorn.conf.py
RUN pip install --no-cache-dir . "gunicorn>=22"
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v1/health', timeout=2)"
CMD ["gunicorn", "-c", "infra/api/gunicorn.conf.py", "functions.local:app"]
