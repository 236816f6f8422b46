"""Celery workers: thin tasks over videoapi.pipeline.detection.ShotDetector."""
