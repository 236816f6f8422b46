"""The in-process engine: the service's result without the service (real model runtime, generated videos)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from local.synthetic import write_video, write_zero_frames
from videoapi.domain.exports import to_csv, to_edl
from videoapi.errors import DetectionFailed, ModelNotBuilt, VideoRejected
from videoapi.pipeline.engine import Detector, LocalModel, ShotResult, with_window_for_this_cpu
from videoapi.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from testset import photographs, write_testset_video  # noqa: E402

# bf16 on both sides; a batch of other windows may round differently
DRIFT = 0.02


@pytest.fixture(scope="module")
def detector(model_repository) -> Detector:
    return Detector(Settings())


@pytest.fixture(scope="module")
def four_shots(tmp_path_factory) -> tuple[Path, list[int]]:
    path = tmp_path_factory.mktemp("engine") / "four shots.mp4"
    return path, write_video(path, [60, 45, 80, 65], fps=25)


def test_detect_finds_the_cuts_and_gives_the_service_document(detector, four_shots):
    path, cuts = four_shots
    result = detector.detect(path)
    assert isinstance(result, ShotResult)
    assert [shot.start_frame for shot in result.shots[1:]] == cuts
    assert all(shot.start_frame <= shot.keyframe <= shot.end_frame for shot in result.shots)
    document = json.loads(result.to_json())
    assert document == result.document and document["schema"] == "videoapi.pipeline.shots/1"
    assert document["video"] == {
        "source": str(path.resolve()),
        "fps": 25.0,
        "frame_count": 250,
        "duration": 10.0,
        "width": 320,
        "height": 180,
        "codec": "h264",
        "rotation": 0,
        "display_width": 320,
        "display_height": 180,
        "field_order": "progressive",
        "variable_frame_rate": False,
        "timecode": "smpte",
    }
    assert document["warnings"] == []
    # the default window: 150, or 200 where this CPU runs the INT8 build for AVX2's kernels (test_int8.py)
    window = with_window_for_this_cpu(Settings()).window
    assert document["model"] == {"name": "transnetv2", "version": "1", "window": window} and window in (150, 200)
    assert result.predictions.frame_count == 250
    assert result.export("csv") == to_csv(document) and result.export("edl") == to_edl(document)
    rows = list(csv.DictReader(io.StringIO(result.export("csv"))))
    assert [int(r["start_frame"]) for r in rows if r["kind"] == "shot"][1:] == cuts
    assert [(t["type"], t["start_frame"], t["end_frame"]) for t in result.transitions] == [("cut", c, c) for c in cuts]
    assert [(c["type"], c["start_frame"], c["end_frame"]) for c in result.technical_cues] == [("Content", 0, 249)]
    with pytest.raises(ValueError, match="format must be among json, csv, edl"):
        result.export("pdf")


def test_save_writes_the_files_the_document_names(detector, four_shots, tmp_path):
    import cv2

    result = detector.detect(four_shots[0])
    folder = result.save(tmp_path / "out")
    document = json.loads((folder / "shots.json").read_text())
    assert document == result.document
    with np.load(folder / document["probabilities"]["key"]) as arrays:
        assert np.array_equal(arrays["single_frame"], result.predictions.single_frame)
    sheet = cv2.imread(str(folder / document["previews"]["thumbnails"]["key"]))
    overview = cv2.imread(str(folder / document["previews"]["overview"]["key"]))
    assert sheet is not None and overview is not None
    assert (
        sheet.shape[1]
        == document["previews"]["thumbnails"]["columns"] * document["previews"]["thumbnails"]["tile_width"]
    )


def test_the_threshold_option_is_the_jobs(detector, four_shots):
    path, cuts = four_shots
    strict = detector.detect(path, threshold=0.99)
    assert strict.document["threshold"] == 0.99
    assert len(strict.shots) <= len(cuts) + 1
    kept = [s.start_frame for s in strict.shots[1:]]
    assert set(kept) <= set(cuts)
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        detector.detect(path, threshold=1.5)


def test_iter_shots_gives_the_same_shots_as_detect(detector, tmp_path):
    path = tmp_path / "many.mp4"
    write_video(path, [70, 30, 120, 55, 90, 40, 200, 60, 35, 110] * 2, fps=25, width=160, height=90)
    streamed = list(detector.iter_shots(path))
    whole = detector.detect(path).shots
    assert len(streamed) == len(whole) >= 15
    for a, b in zip(streamed, whole):
        assert (a.index, a.start_frame, a.end_frame, a.start_timecode, a.end_timecode) == (
            b.index,
            b.start_frame,
            b.end_frame,
            b.start_timecode,
            b.end_timecode,
        )
        assert abs(a.confidence - b.confidence) < DRIFT


def test_an_iterator_left_early_stops_the_decode(detector, tmp_path):
    import threading

    path = tmp_path / "long.mp4"
    write_video(path, [100] * 20, fps=25, width=160, height=90)
    before = threading.active_count()
    shots = detector.iter_shots(path)
    first = next(shots)
    shots.close()
    assert first.index == 0 and first.end_frame == 99
    assert threading.active_count() == before


def test_bad_inputs_give_clear_errors(detector, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video file"):
        detector.detect(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoRejected) as rejected:
        detector.detect(junk)
    assert rejected.value.code == "not_a_video"
    empty = tmp_path / "empty.mp4"
    write_zero_frames(empty)
    with pytest.raises((VideoRejected, DetectionFailed)) as failed:
        detector.detect(empty)
    assert failed.value.code in ("zero_frames", "no_video_stream", "not_a_video")


def test_a_missing_model_gives_the_clear_message(tmp_path):
    settings = Settings(model_repository=tmp_path / "no-models", engine_build_model=False)
    with pytest.raises(ModelNotBuilt, match=r"no model in .*no-models.*run `videoapi model build`"):
        Detector(settings)


def test_detect_many_loads_the_model_once_and_keeps_the_order(detector, tmp_path):
    videos = []
    for k, lengths in enumerate(([30, 40], [50, 20, 30], [25, 25, 25, 25])):
        videos.append(tmp_path / f"clip{k}.mp4")
        write_video(videos[-1], lengths, fps=25, width=160, height=90, seed=k)
    videos.append(tmp_path / "missing.mp4")
    results = list(detector.detect_many(videos, workers=2))
    assert [path for path, _ in results] == videos
    assert [len(r.shots) for _, r in results[:3]] == [2, 3, 4]
    assert isinstance(results[3][1], FileNotFoundError)
    # compiled for two calls at once (what `videoapi detect *.mp4` uses): the same shots, the same probabilities
    batch = Detector(Settings(), streams=2)
    for (path, alone), (_, together) in zip(results[:3], batch.detect_many(videos[:3], workers=2)):
        assert together.shots == alone.shots, path
        assert np.abs(together.predictions.single_frame - alone.predictions.single_frame).max() < DRIFT


def test_a_tf_style_model_file_runs_in_process_like_the_canonical_one(model_repository, tmp_path, reference_frames):
    import importlib.util

    from videoapi.model.repository import build_model_repository

    # the TensorFlow-style file the repository tests make (other names, float input, logits)
    spec = importlib.util.spec_from_file_location("test_repository", Path(__file__).parent / "model/test_repository.py")
    tf_style_variant = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tf_style_variant)
    tf_style_variant = tf_style_variant.tf_style_variant
    repo = tmp_path / "tf"
    variant = tf_style_variant(model_repository / "transnetv2/1/model.onnx", tmp_path / "exported.onnx")
    # f32 on both sides: the file's reading is the point here; its INT8 build (a minute) is test_int8.py's
    build_model_repository(repo, onnx_file=variant, single_frame_output="output_1", int8=False)
    windows = np.stack([reference_frames[s : s + 100] for s in (0, 700, 2100)])
    single, many = LocalModel(repo / "transnetv2", precision="f32").predict(windows)
    expected_single, expected_many = LocalModel(model_repository / "transnetv2", precision="f32").predict(windows)
    assert np.abs(single - expected_single).max() < 1e-5 and np.abs(many - expected_many).max() < 1e-5


def test_model_build_puts_the_shared_runtime_beside_model_py(model_repository, tmp_path):
    from videoapi.model import runtime
    from videoapi.model.repository import build_model_repository

    build_model_repository(tmp_path, onnx_file=model_repository / "transnetv2/1/model.onnx", int8=False)
    copied = tmp_path / "transnetv2" / "1" / runtime.RUNTIME_MODULE
    assert copied.read_text() == Path(runtime.__file__).read_text()


# ---- the engine against the service (real Redis, moto S3, Triton): the same result ----


def comparable(document: dict) -> dict:
    """The document without what differs by design (job id, source, keys) or by runtime drift (confidences)."""
    document = json.loads(json.dumps(document))
    document.pop("job_id")
    document["video"].pop("source")
    document["probabilities"].pop("key")
    for preview in document["previews"].values():
        preview.pop("key")
    for shot in document["shots"]:
        shot.pop("confidence")
    return document


def service_result(stack_settings, triton, video: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """What a worker publishes for the video (split into segments past stack_settings.segment_frames)."""
    from videoapi.adapters.storage import Storage
    from videoapi.adapters.triton import ShotModelClient
    from videoapi.domain.jobs import JobStore
    from videoapi.pipeline.detection import ShotDetector

    storage, store = Storage.from_settings(stack_settings), JobStore.from_url(stack_settings.redis_url)
    key = f"incoming/{time.time_ns()}-{video.name}"
    storage.put_bytes(key, video.read_bytes(), "video/mp4")
    job = store.create(bucket=storage.bucket, key=key, threshold=0.5)
    with ShotModelClient(triton.grpc_url) as model:
        detector = ShotDetector(stack_settings, store, storage, lambda: model)
        begun = detector.begin(job.id)
        if isinstance(begun, list):  # a long video: its segments, then the stitch, as the workers do it
            begun = detector.stitch(job.id, [detector.run_segment(job.id, segment) for segment in begun])
    with np.load(io.BytesIO(storage.get_bytes(begun["probabilities"]["key"]))) as arrays:
        return begun, {name: arrays[name] for name in arrays.files}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,shots",
    [("cuts", 10), ("gradual", 8), ("distractors", 8), ("short", 0)],
)
def test_the_engine_equals_the_service(stack_settings, triton, detector, tmp_path, kind, shots):
    video = tmp_path / f"{kind}.mp4"
    if kind == "short":
        write_video(video, [40, 45, 40], fps=25)
    else:  # longer than stack_settings.segment_frames: the service splits it, the engine does not
        write_testset_video(video, kind, seed=7, shots=shots, width=320, height=180)
    # both at the default window (stack_settings keeps the reference's 100 for the tests that count windows)
    default = stack_settings.model_copy(update={"window": detector.settings.window})
    service, probabilities = service_result(default, triton, video)
    engine = detector.detect(video)
    assert comparable(engine.document) == comparable(service)
    for ours, theirs in zip(engine.document["shots"], service["shots"]):
        assert abs(ours["confidence"] - theirs["confidence"]) < DRIFT
    for name in ("single_frame", "many_hot"):
        assert getattr(engine.predictions, name).shape == probabilities[name].shape
        drift = np.abs(getattr(engine.predictions, name) - probabilities[name]).max()
        print(f"{kind} {name}: max drift between the engine and the service {drift:.1e}")
        assert drift < DRIFT


def test_the_engine_path_imports_no_service_library():
    """Start-up time: the CLI and the engine load neither Celery, boto3, FastAPI, Redis nor the Triton client."""
    import subprocess

    code = (
        "import sys, videoapi, videoapi.cli, videoapi.pipeline.engine; "
        "from videoapi.pipeline import engine; "
        "assert videoapi.detect is engine.detect and videoapi.Detector is engine.Detector; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'celery', 'boto3', 'botocore', 'fastapi', 'redis', 'tritonclient', 'grpc', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_missing_model_is_built_on_first_use_and_says_so(tmp_path, four_shots, detector, monkeypatch):
    """The export from the reference weights (the `export` extra), as `videoapi model build` does it; its INT8 model
    calibrated on 8 windows, as test_int8's, not 48: the build's path is the same, at a sixth of its CPU."""
    monkeypatch.setattr("videoapi.model.quantize.CALIBRATION_WINDOWS", 8)
    said = []
    fresh = Detector(Settings(model_repository=tmp_path / "fresh"), on_status=said.append)
    assert len(said) == 1 and said[0].startswith("no model file in") and "building it now" in said[0]
    assert (tmp_path / "fresh" / "transnetv2" / "1" / "model.onnx").is_file()
    path, cuts = four_shots
    result = fresh.detect(path)
    assert [shot.start_frame for shot in result.shots[1:]] == cuts
    expected = detector.detect(path).predictions.single_frame
    assert np.abs(result.predictions.single_frame - expected).max() < DRIFT


def test_black_at_the_ends_opens_no_shot_and_the_fades_are_the_first_and_last_shots(detector, tmp_path):
    """Issue 36: black, a fade in, a cut, a fade out in the last second, black to the end: two shots, the fades
    typed fade_in and fade_out over their ramps, the black no part of them and no shot of its own."""
    photos = photographs()
    pictures = [filmed(photos[0]), filmed(photos[2])]
    frames = [np.zeros_like(pictures[0])] * 10  # black 0..9
    frames += [pictures[0] * ((i + 1) / 21) for i in range(20)]  # the fade in 10..29
    frames += [np.roll(pictures[0], t // 3, axis=1) for t in range(70)]  # 30..99
    frames += [np.roll(pictures[1], t // 3, axis=1) for t in range(60)]  # the cut at 100
    frames += [np.roll(pictures[1], 20 + t // 3, axis=1) * (1 - (i + 1) / 21) for i, t in enumerate(range(20))]
    frames += [np.zeros_like(pictures[0])] * 15  # the fade out 160..179, black 180..194
    path = tmp_path / "black ends.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    document = detector.detect(path).document
    found = [(t["type"], t["start_frame"], t["end_frame"]) for t in document["transitions"]]
    assert [t[0] for t in found] == ["fade_in", "cut", "fade_out"], found
    (_, in_start, in_end), (_, cut, _), (_, out_start, out_end) = found
    assert abs(in_start - 10) <= 3 and abs(in_end - 29) <= 3 and cut == 100
    assert abs(out_start - 160) <= 4 and abs(out_end - 179) <= 3
    assert [(s["start_frame"], s["end_frame"]) for s in document["shots"]] == [(0, 99), (100, 194)]
    # the black held at either end is a BlackFrames cue (its own looser level takes in the ramps' darkest frames)
    black = [(c["start_frame"], c["end_frame"]) for c in document["technical_cues"] if c["type"] == "BlackFrames"]
    assert len(black) == 2 and black[0][0] == 0 and 9 <= black[0][1] <= in_end
    assert out_start <= black[1][0] <= 180 and black[1][1] == 194


def filmed(photo: np.ndarray) -> np.ndarray:
    """A photograph at the test video's size, as float RGB."""
    return cv2.resize(photo, (320, 180), interpolation=cv2.INTER_AREA).astype(np.float32)
