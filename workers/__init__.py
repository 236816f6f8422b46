"""Celery workers: thin tasks over videoapi.detection.ShotDetector."""
