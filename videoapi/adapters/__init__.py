"""Adapters to outside systems: S3-compatible storage, the Celery queue, Triton."""
