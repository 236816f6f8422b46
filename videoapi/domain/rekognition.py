"""Our result document in the shape of Rekognition's GetSegmentDetection response (format=rekognition).

The shape is botocore's Rekognition service model (tests validate against it); confidences are 0-100 there.
Cue types Rekognition has no name for (FrozenFrames, Silence) stay in our own JSON only.
"""

from __future__ import annotations

from typing import Any

from videoapi.pipeline.shots import smpte_timecode

SEGMENT_TYPES = ("TECHNICAL_CUE", "SHOT")
REKOGNITION_CUE_TYPES = ("ColorBars", "EndCredits", "BlackFrames", "OpeningCredits", "StudioLogo", "Slate", "Content")
# Rekognition reports no segment under 50 (MinSegmentConfidence's floor); our shots can be below it when
# the job's threshold is under 0.5, so their confidence is raised to the floor rather than the shot dropped.
MIN_CONFIDENCE = 50.0
REKOGNITION_OPTIONS = "rekognition_options"  # the job record's field holding a StartSegmentDetection's options


def _millis(seconds: float) -> int:
    return int(round(seconds * 1000))


def _segment(kind: str, item: dict[str, Any], fps: float) -> dict[str, Any]:
    start, end = int(item["start_frame"]), int(item["end_frame"])
    duration = end - start + 1
    start_ms, end_ms = _millis(item["start_time"]), _millis(item["end_time"])
    return {
        "Type": kind,
        "StartTimestampMillis": start_ms,
        "EndTimestampMillis": end_ms,
        "DurationMillis": end_ms - start_ms,
        "StartTimecodeSMPTE": item.get("start_timecode") or smpte_timecode(start, fps),
        "EndTimecodeSMPTE": item.get("end_timecode") or smpte_timecode(end, fps),
        "DurationSMPTE": smpte_timecode(duration, fps),
        "StartFrameNumber": start,
        "EndFrameNumber": end,
        "DurationFrames": duration,
    }


def _confidence(value: float) -> float:
    return round(max(MIN_CONFIDENCE, min(100.0, 100.0 * float(value))), 3)


def video_metadata(document: dict[str, Any]) -> list[dict[str, Any]]:
    video = document["video"]
    metadata = {
        "Codec": video.get("codec", ""),
        "DurationMillis": _millis(video["duration"]),
        "Format": video.get("format") or "",
        "FrameRate": float(video["fps"]),
        "FrameHeight": int(video["height"]),
        "FrameWidth": int(video["width"]),
    }
    if video.get("color_range") in ("FULL", "LIMITED"):
        metadata["ColorRange"] = video["color_range"]
    return [metadata]


def audio_metadata(document: dict[str, Any]) -> list[dict[str, Any]]:
    audio = document.get("audio")
    if not audio:
        return []
    return [
        {
            "Codec": audio.get("codec") or "",
            "DurationMillis": _millis(audio.get("duration", document["video"]["duration"])),
            "SampleRate": int(audio.get("sample_rate") or 0),
            "NumberOfChannels": int(audio.get("channels") or 0),
        }
    ]


def segments(
    document: dict[str, Any],
    segment_types: tuple[str, ...] = SEGMENT_TYPES,
    shot_min_confidence: float = MIN_CONFIDENCE,
    cue_min_confidence: float = MIN_CONFIDENCE,
) -> list[dict[str, Any]]:
    """Shots and Rekognition-named cues as Rekognition's Segments, ordered by start time; confidences 0-100."""
    fps = float(document["video"]["fps"])
    found = []
    if "SHOT" in segment_types:
        for shot in document["shots"]:
            confidence = _confidence(shot["confidence"])
            if confidence >= shot_min_confidence:
                found.append(
                    {**_segment("SHOT", shot, fps), "ShotSegment": {"Index": shot["index"], "Confidence": confidence}}
                )
    if "TECHNICAL_CUE" in segment_types:
        for cue in document.get("technical_cues") or []:
            confidence = _confidence(cue["confidence"])
            if cue["type"] in REKOGNITION_CUE_TYPES and confidence >= cue_min_confidence:
                found.append(
                    {
                        **_segment("TECHNICAL_CUE", cue, fps),
                        "TechnicalCueSegment": {"Type": cue["type"], "Confidence": confidence},
                    }
                )
    return sorted(found, key=lambda s: (s["StartTimestampMillis"], s["Type"] != "TECHNICAL_CUE"))


def selected_segment_types(
    document: dict[str, Any], segment_types: tuple[str, ...] = SEGMENT_TYPES
) -> list[dict[str, Any]]:
    model = document.get("model") or {}
    versions = {
        "SHOT": f"{model.get('name', 'transnetv2')}/{model.get('version') or '1'}",
        "TECHNICAL_CUE": "videoapi-cues/1",
    }
    return [{"Type": kind, "ModelVersion": versions[kind]} for kind in SEGMENT_TYPES if kind in segment_types]


def segment_detection(
    document: dict[str, Any],
    segment_types: tuple[str, ...] = SEGMENT_TYPES,
    shot_min_confidence: float = MIN_CONFIDENCE,
    cue_min_confidence: float = MIN_CONFIDENCE,
) -> dict[str, Any]:
    """A succeeded job's result document as GetSegmentDetection's response (all segments, no pagination)."""
    return {
        "JobStatus": "SUCCEEDED",
        "VideoMetadata": video_metadata(document),
        "AudioMetadata": audio_metadata(document),
        "Segments": segments(document, segment_types, shot_min_confidence, cue_min_confidence),
        "SelectedSegmentTypes": selected_segment_types(document, segment_types),
    }
