"""format=rekognition: our result document as GetSegmentDetection's response, checked against botocore's model."""

from __future__ import annotations

import botocore.session
import numpy as np
import pytest
from botocore.validate import ParamValidator

from local.synthetic import tone, write_pictures
from videoapi.domain.rekognition import segment_detection
from videoapi.pipeline.probe import probe
from videoapi.pipeline.shots import ShotList


@pytest.fixture(scope="module")
def output_shape():
    model = botocore.session.get_session().get_service_model("rekognition")
    return model.operation_model("GetSegmentDetection").output_shape


def model_violations(value, shape, path="") -> list[str]:
    """What botocore's validator leaves out: enums and numeric ranges of the model, and unknown members."""
    found = []
    if shape.type_name == "structure":
        for name, item in value.items():
            if name not in shape.members:
                found.append(f"{path}.{name}: not in the model")
            else:
                found += model_violations(item, shape.members[name], f"{path}.{name}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            found += model_violations(item, shape.member, f"{path}[{i}]")
    else:
        meta = shape.metadata
        if meta.get("enum") and value not in meta["enum"]:
            found.append(f"{path}: {value!r} not in {meta['enum']}")
        if shape.type_name in ("long", "integer", "float", "double"):
            if "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
                found.append(f"{path}: {value} outside [{meta.get('min')}, {meta.get('max')}]")
    return found


def result_document(fps: float = 25.0) -> dict:
    """A document as publish writes it: shots from real probabilities, cues in the contract's shape."""
    probs = np.zeros(250, np.float32)
    probs[[59, 60, 149, 200]] = [0.7, 0.96, 0.55, 0.3]  # cuts at 60 and 149; 200 is below the threshold
    shots = ShotList.from_predictions(probs, fps=fps, threshold=0.5).to_dicts()

    def cue(kind, start, end, confidence):
        return {
            "type": kind,
            "start_frame": start,
            "end_frame": end,
            "start_time": start / fps,
            "end_time": (end + 1) / fps,
            "start_timecode": "",
            "end_timecode": "",
            "duration_frames": end - start + 1,
            "confidence": confidence,
        }

    return {
        "schema": "videoapi.pipeline.shots/1",
        "video": {"fps": fps, "frame_count": 250, "duration": 10.0, "width": 640, "height": 360, "codec": "h264"},
        "audio": {"codec": "aac", "sample_rate": 48000, "channels": 2, "channel_layout": "stereo", "duration": 10.0},
        "model": {"name": "transnetv2", "version": "1"},
        "shots": shots,
        "technical_cues": [
            cue("ColorBars", 0, 59, 0.99),
            cue("Content", 60, 249, 1.0),
            cue("BlackFrames", 150, 160, 0.8),
            cue("FrozenFrames", 170, 230, 0.9),
            cue("Silence", 0, 249, 0.9),
        ],
    }


def test_the_document_validates_against_botocores_rekognition_model(output_shape):
    response = {"JobId": "job_0123", **segment_detection(result_document())}
    report = ParamValidator().validate(response, output_shape)  # missing required members, wrong types
    assert not report.has_errors(), report.generate_report()
    assert model_violations(response, output_shape) == []


def test_segments_carry_rekognitions_fields_and_units():
    response = segment_detection(result_document())
    shots = [s for s in response["Segments"] if s["Type"] == "SHOT"]
    assert [(s["StartFrameNumber"], s["EndFrameNumber"]) for s in shots] == [(0, 59), (61, 149), (150, 249)]
    second = shots[1]
    assert second["ShotSegment"] == {"Index": 1, "Confidence": 96.0}
    assert second["StartTimestampMillis"] == 2440 and second["EndTimestampMillis"] == 6000
    assert second["DurationMillis"] == 3560 and second["DurationFrames"] == 89
    assert second["StartTimecodeSMPTE"] == "00:00:02:11" and second["DurationSMPTE"] == "00:00:03:14"
    kinds = {s["TechnicalCueSegment"]["Type"] for s in response["Segments"] if s["Type"] == "TECHNICAL_CUE"}
    assert kinds == {"ColorBars", "Content", "BlackFrames"}  # FrozenFrames and Silence have no Rekognition name
    starts = [s["StartTimestampMillis"] for s in response["Segments"]]
    assert starts == sorted(starts)
    assert response["VideoMetadata"][0]["FrameRate"] == 25.0 and response["VideoMetadata"][0]["DurationMillis"] == 10000
    assert response["AudioMetadata"] == [
        {"Codec": "aac", "DurationMillis": 10000, "SampleRate": 48000, "NumberOfChannels": 2}
    ]


def test_segment_types_and_confidence_filters_select_segments():
    document = result_document()
    shots_only = segment_detection(document, segment_types=("SHOT",))
    assert {s["Type"] for s in shots_only["Segments"]} == {"SHOT"}
    assert [t["Type"] for t in shots_only["SelectedSegmentTypes"]] == ["SHOT"]
    confident = segment_detection(document, shot_min_confidence=90, cue_min_confidence=95)
    assert [s["ShotSegment"]["Index"] for s in confident["Segments"] if s["Type"] == "SHOT"] == [0, 1]
    cue_kinds = [s["TechnicalCueSegment"]["Type"] for s in confident["Segments"] if s["Type"] == "TECHNICAL_CUE"]
    assert cue_kinds == ["ColorBars", "Content"]


def test_a_document_without_cues_or_audio_still_fits_the_model(output_shape):
    document = result_document()
    del document["technical_cues"], document["audio"]
    response = segment_detection(document)
    assert response["AudioMetadata"] == [] and {s["Type"] for s in response["Segments"]} == {"SHOT"}
    assert not ParamValidator().validate(response, output_shape).has_errors()
    assert model_violations(response, output_shape) == []


@pytest.mark.parametrize("codec, suffix, channels", [("aac", "mp4", 2), ("pcm_s16le", "mov", 1)])
def test_a_real_files_audio_metadata_fills_audiometadata(output_shape, tmp_path, codec, suffix, channels):
    path = tmp_path / f"sound.{suffix}"
    pictures = [np.full((36, 64, 3), 10 * i, np.uint8) for i in range(50)]
    layout = "stereo" if channels == 2 else "mono"
    write_pictures(path, pictures, sound=tone(2.0, 44100), sample_rate=44100, audio_codec=codec, layout=layout)
    document = {**result_document(), "audio": probe(path).audio}
    response = {"JobId": "job_0123", **segment_detection(document)}
    assert not ParamValidator().validate(response, output_shape).has_errors()
    assert model_violations(response, output_shape) == []
    [metadata] = response["AudioMetadata"]
    assert metadata["Codec"] == codec and metadata["SampleRate"] == 44100
    assert metadata["NumberOfChannels"] == channels and abs(metadata["DurationMillis"] - 2000) <= 50
