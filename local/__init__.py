"""The local emulator: moto S3, Redis, Triton, Celery workers and the API on one machine."""
