"""Shot-boundary detection with TransNetV2: `detect("video.mp4")` here, or the service (docs/getting-started.md)."""

from typing import Any

_ENGINE_NAMES = ("detect", "Detector", "ShotResult")


def __getattr__(name: str) -> Any:
    # the engine (and its model runtime) loads only when asked for, not on every `import videoapi.x`
    if name in _ENGINE_NAMES:
        from videoapi.pipeline import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'videoapi' has no attribute {name!r}")


__all__ = list(_ENGINE_NAMES)
