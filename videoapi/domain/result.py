"""The result document (schema videoapi.pipeline.shots/1): built in one pure function, whoever runs the model.

The worker (videoapi.pipeline.detection) and the in-process engine (videoapi.pipeline.engine) both call
`shot_document`; they differ only in the job id, the source and where the files are kept.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.postprocess import opening_transitions
from videoapi.pipeline.probe import VideoInfo
from videoapi.pipeline.shots import FrameClock, ShotList

RESULT_SCHEMA = "videoapi.pipeline.shots/1"
PROBABILITY_ARRAYS = ("single_frame", "many_hot")


@dataclass(frozen=True)
class ResultKeys:
    """Where a result's files are kept: object keys for a job, file names for the engine."""

    shots: str
    probabilities: str
    overview: str
    thumbnails: str

    @classmethod
    def under(cls, prefix: str) -> ResultKeys:
        """The four files under `prefix` ("" for bare file names)."""
        return cls(
            f"{prefix}shots.json", f"{prefix}probabilities.npz", f"{prefix}overview.png", f"{prefix}thumbnails.jpg"
        )


@dataclass(frozen=True)
class ModelIdentity:
    """The model that made a result, as the document names it."""

    name: str
    version: str
    window: int


def npz_bytes(**arrays: NDArray[Any]) -> bytes:
    """Arrays as a compressed .npz file's bytes."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def shot_document(
    *,
    job_id: str,
    source: str,
    info: VideoInfo,
    frame_count: int,
    clock: FrameClock,
    warnings: list[dict[str, Any]],
    threshold: float,
    postprocess: bool,
    transitions: list[dict[str, Any]],
    model: ModelIdentity,
    shots: ShotList,
    previews: dict[str, Any],
    keys: ResultKeys,
) -> dict[str, Any]:
    """The shots.json document of one video; `frame_count` is the frames decoded, `previews` their layout."""
    opening = opening_transitions(transitions)
    fps = info.fps
    return {
        "schema": RESULT_SCHEMA,
        "job_id": job_id,
        "video": {
            "source": source,
            "fps": fps,
            "frame_count": frame_count,
            "duration": clock.duration(frame_count),
            "width": info.width,
            "height": info.height,
            "codec": info.codec,
            "rotation": info.rotation,
            "display_width": info.display_width or info.width,
            "display_height": info.display_height or info.height,
            "field_order": info.field_order,
            "variable_frame_rate": info.variable_frame_rate,
            **(
                {"avg_fps": info.fps, "min_fps": info.min_fps, "max_fps": info.max_fps}
                if info.variable_frame_rate
                else {}
            ),
            "timecode": "media" if clock.variable else "smpte",
        },
        "audio": info.audio,
        "warnings": warnings,
        "model": {"name": model.name, "version": model.version, "window": model.window},
        "threshold": threshold,
        "shot_count": len(shots.shots),
        "postprocess": postprocess,
        "shots": [
            {**shot, "keyframe": frame, **({"transition": opening[shot["index"] - 1]} if shot["index"] else {})}
            for shot, frame in itertools.zip_longest(shots.to_dicts(), previews["thumbnails"]["keyframes"])
            if shot
        ],
        "transitions": transitions,
        "probabilities": {"key": keys.probabilities, "format": "npz", "arrays": list(PROBABILITY_ARRAYS)},
        "previews": previews,
    }
