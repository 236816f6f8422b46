"""The Celery worker, for real: Redis broker, moto S3, Triton; videos generated here."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from local.netutil import free_port
from local.synthetic import (
    write_audio_only,
    write_huge_declared,
    write_one_pixel,
    write_ten_hours_declared,
    write_video,
    write_zero_frames,
    write_zero_timescale,
    write_zip_bomb,
)
from local.worker_process import WorkerProcess
from videoapi.adapters.storage import Storage
from videoapi.adapters.triton import ShotModelClient
from videoapi.domain import redis_keys
from videoapi.domain.callbacks import signature
from videoapi.domain.jobs import Job, JobStatus, JobStore
from videoapi.pipeline.cues import SegmentOptions, technical_cues
from videoapi.pipeline.detection import Segment, ShotDetector
from videoapi.pipeline.frame_features import FeatureTap, frame_features
from videoapi.pipeline.postprocess import shot_list, transitions_for
from videoapi.pipeline.preview import KEYFRAME_MIN_STRIDE
from videoapi.pipeline.probe import probe_timeline
from videoapi.pipeline.shots import FrameClock, score_transitions, shot_spans
from workers.celery_app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker(stack_settings, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    with WorkerProcess(stack_settings, concurrency=2, log_path=log) as process:
        yield process


@pytest.fixture(scope="module")
def celery(stack_settings):
    app = create_app(stack_settings)
    yield app
    app.close()


@pytest.fixture(scope="module")
def store(stack_settings) -> JobStore:
    return JobStore.from_url(stack_settings.redis_url)


@pytest.fixture(scope="module")
def storage(stack_settings) -> Storage:
    return Storage.from_settings(stack_settings)


def submit(
    celery, store: JobStore, storage: Storage, video: Path | bytes | None, name: str = "v.mp4", **extra: str
) -> str:
    key = f"incoming/{time.time_ns()}-{name}"
    if video is not None:
        data = video if isinstance(video, bytes) else video.read_bytes()
        storage.put_bytes(key, data, "video/mp4")
    job = store.create(bucket=storage.bucket, key=key, threshold=0.5, **extra)
    celery.send_task("videoapi.detect_shots", args=[job.id])
    return job.id


def wait(store: JobStore, job_id: str, timeout_s: float = 240, seen: list | None = None) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if seen is not None:
            seen.append((job.status, job.progress))
        if job.status in (JobStatus.succeeded, JobStatus.failed):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {store.get(job_id).status} after {timeout_s}s")


def test_short_video_becomes_a_shot_document(worker, celery, store, storage, tmp_path):
    video = tmp_path / "short.mp4"
    cuts = write_video(video, [60, 45, 80, 65], fps=25)
    job = wait(store, submit(celery, store, storage, video))
    assert job.status == JobStatus.succeeded, (job.error_code, job.error_message)
    assert job.progress == 100.0 and job.frames_done == job.frames_total == 250

    doc = storage.get_json(job.result_key)
    assert doc["video"] | {"source": None} == {
        "source": None,
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
    assert doc["warnings"] == []
    assert doc["model"]["name"] == "transnetv2" and doc["model"]["version"] == "1" and doc["threshold"] == 0.5
    shots = doc["shots"]
    assert [s["index"] for s in shots] == list(range(len(shots))) == list(range(doc["shot_count"]))
    found = [(a["end_frame"], b["start_frame"]) for a, b in zip(shots, shots[1:])]
    truth = [(c - 1, c) for c in cuts]
    assert score_transitions(found, truth, tolerance=2).f1 == 1.0
    first = shots[1]
    assert first["start_time"] == pytest.approx(first["start_frame"] / 25)
    assert first["start_timecode"].startswith("00:00:0") and 0.5 < first["confidence"] <= 1.0
    assert shots[-1]["end_frame"] == 249 and shots[-1]["end_time"] == 10.0

    with np.load(io.BytesIO(storage.get_bytes(doc["probabilities"]["key"]))) as probs:
        assert probs["single_frame"].shape == probs["many_hot"].shape == (250,)
        assert shot_spans(probs["single_frame"]) == [(s["start_frame"], s["end_frame"]) for s in shots]


def test_long_video_split_into_segments_equals_a_single_pass(worker, celery, store, storage, stack_settings, tmp_path):
    video = tmp_path / "long.mp4"
    # 1260 frames; segments of 500; an AAC tone, heard by each segment's own decode
    cuts = write_video(video, [130, 210, 95, 300, 170, 245, 110], fps=25, seed=7, audio=True)
    seen: list = []
    job = wait(store, submit(celery, store, storage, video), seen=seen)
    assert job.status == JobStatus.succeeded, (job.error_code, job.error_message)
    assert store.field(job.id, "segments_sent") == "1"  # it really fanned out
    doc = storage.get_json(job.result_key)

    with ShotModelClient(stack_settings.triton_url) as model:
        detector = ShotDetector(stack_settings, store, storage, lambda: model)
        features = FeatureTap(frame_features(stack_settings))
        frame_pts = probe_timeline(video)[1]
        single = detector.predict_file(
            video, Segment(0, None), progress=lambda done: None, features=features, frame_pts=frame_pts
        )
    # the stitched cue arrays (picture and sound) give the single pass's cues; the probe's audio is in the result
    assert doc["technical_cues"] == technical_cues(features.arrays(), FrameClock(25.0), SegmentOptions())
    assert doc["audio"]["codec"] == "aac" and abs(doc["audio"]["duration"] - 1260 / 25) < 0.1
    with np.load(io.BytesIO(storage.get_bytes(doc["probabilities"]["key"]))) as stitched:
        assert stitched["single_frame"].shape == single.single_frame.shape == (1260,)
        assert np.abs(stitched["single_frame"] - single.single_frame).max() < 1e-5
        assert np.abs(stitched["many_hot"] - single.many_hot).max() < 1e-5
    # the single pass post-processed as the stitched job is (it finds the cuts at 435 and 1150 the model
    # scores under the threshold): the same shots, and they are the video's
    found = transitions_for(single.single_frame, single.many_hot, features.arrays(), 0.5, enabled=True)
    expected = shot_list(found, 1260, FrameClock(25.0), 0.5).shots
    assert [(s["start_frame"], s["end_frame"]) for s in doc["shots"]] == [
        (s.start_frame, s.end_frame) for s in expected
    ]
    assert [s["start_frame"] for s in doc["shots"]] == [0, *cuts]
    # keyframes were taken by the segments' own decode (candidates every 4th frame), not by a second pass
    for shot in doc["shots"]:
        middle = (shot["start_frame"] + shot["end_frame"]) // 2
        assert shot["keyframe"] % KEYFRAME_MIN_STRIDE == 0 and abs(shot["keyframe"] - middle) <= 2, shot
    sheet = cv2.imdecode(np.frombuffer(storage.get_bytes(doc["previews"]["thumbnails"]["key"]), np.uint8), 1)
    layout = doc["previews"]["thumbnails"]
    cap = cv2.VideoCapture(str(video))
    every = [cap.read()[1] for _ in range(1260)]
    for i in range(len(doc["shots"])):
        y, x = (i // layout["columns"]) * 90, (i % layout["columns"]) * 160
        tile = sheet[y : y + 90, x : x + 160].astype(int)
        errors = [
            np.abs(tile - cv2.resize(every[s["keyframe"]], (160, 90), interpolation=cv2.INTER_AREA)).mean()
            for s in doc["shots"]
        ]
        assert int(np.argmin(errors)) == i, (i, errors)
    assert not [
        k for k in storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=f"work/{job.id}/").get("Contents", [])
    ]  # segment scratch files are cleaned up

    progress = [p for status, p in seen if status == JobStatus.running]
    assert progress == sorted(progress) and any(0 < p < 100 for p in progress)


BAD_INPUTS = {
    "empty": ("empty_file", lambda p: p.write_bytes(b"")),
    # seeded: now and then os.urandom's bytes probed as a text subtitle stream (no_video_stream, a flaky failure)
    "random_bytes": ("not_a_video", lambda p: p.write_bytes(np.random.default_rng(0).bytes(50_000))),
    "moov_cut_off": ("not_a_video", lambda p: p.write_bytes(_half_of_a_video(p))),
    "audio_only": ("audio_only", write_audio_only),
    "no_frames": ("no_video_stream", write_zero_frames),
    "tiny_8x8": ("resolution_too_small", lambda p: write_video(p, [10], width=8, height=8)),
    "one_pixel": ("resolution_too_small", write_one_pixel),
    "16000x16000_declared": ("resolution_too_large", write_huge_declared),
    "zero_fps": ("bad_frame_rate", write_zero_timescale),
    "ten_hours_declared": ("duration_too_long", write_ten_hours_declared),
    "zip_bomb": ("not_a_video", write_zip_bomb),
}


def _half_of_a_video(path: Path) -> bytes:
    write_video(path, [60])
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_fails_the_job_with_a_code(worker, celery, store, storage, tmp_path, name):
    code, make = BAD_INPUTS[name]
    path = tmp_path / f"{name}.mp4"
    make(path)
    job = wait(store, submit(celery, store, storage, path, name=f"{name}.mp4"), timeout_s=60)
    assert (job.status, job.error_code) == (JobStatus.failed, code), job.error_message
    assert job.error_message and job.finished_at


def test_after_the_bad_inputs_the_workers_are_alive_and_small(worker, celery, store, storage, tmp_path):
    """Runs after the corpus above (same module worker): no pool process died, none grew."""
    import psutil

    pool = psutil.Process(worker.pid).children()
    assert len(pool) == 2 and all(p.is_running() for p in pool)
    for process in [psutil.Process(worker.pid), *pool]:
        with open(f"/proc/{process.pid}/status") as status:
            peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        assert peak_kb < 1024 * 1024, f"{process.pid} peaked at {peak_kb // 1024} MiB"
    video = tmp_path / "after.mp4"
    write_video(video, [30, 30])
    assert wait(store, submit(celery, store, storage, video)).status == JobStatus.succeeded
    assert [p.pid for p in psutil.Process(worker.pid).children()] == [p.pid for p in pool]  # no pool restart


def test_cancelling_a_running_job_stops_its_segments(worker, celery, store, storage, tmp_path):
    video = tmp_path / "cancel-me.mp4"
    write_video(video, [500] * 8, fps=25)  # 4000 frames: 8 segments, over 30 s of CPU inference
    job_id = submit(celery, store, storage, video)
    deadline = time.monotonic() + 60
    while store.get(job_id).frames_done < 50:
        assert time.monotonic() < deadline, store.get(job_id)
        time.sleep(0.05)
    assert store.cancel(job_id)
    after = tmp_path / "after.mp4"
    write_video(after, [30, 30])
    # queued behind the cancelled segments: once it is done, they all are
    assert wait(store, submit(celery, store, storage, after)).status == JobStatus.succeeded
    job = store.get(job_id)
    assert job.status == JobStatus.cancelled and job.finished_at
    # the two segments running at the cancel stop at their next batch; the six others never decode a frame
    assert job.frames_done < 1500, job.frames_done
    assert worker.log_path.read_text().count("'error_code': 'cancelled'") >= 8
    assert not storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=f"results/{job_id}/").get("KeyCount")


def test_missing_object_fails_and_the_worker_goes_on(worker, celery, store, storage, tmp_path):
    job = wait(store, submit(celery, store, storage, None), timeout_s=60)
    assert (job.status, job.error_code) == (JobStatus.failed, "video_not_found")
    video = tmp_path / "after.mp4"
    write_video(video, [40, 40])
    assert wait(store, submit(celery, store, storage, video)).status == JobStatus.succeeded


def test_triton_down_is_retried_then_fails_with_a_code(stack_settings, storage, tmp_path):
    """A worker on its own Redis database, pointed at a Triton that is not there."""
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(
        update={"redis_url": f"{base}/3", "triton_url": f"127.0.0.1:{free_port()}", "triton_timeout_s": 3.0}
    )
    store = JobStore.from_url(settings.redis_url)
    app = create_app(settings)
    video = tmp_path / "v.mp4"
    write_video(video, [30, 30])
    with WorkerProcess(settings, concurrency=1, name="tritonless", log_path=tmp_path / "w.log"):
        started = time.monotonic()
        job = wait(store, submit(app, store, storage, video), timeout_s=120)
    app.close()
    assert (job.status, job.error_code) == (JobStatus.failed, "triton_unavailable"), job.error_message
    assert "Triton at 127.0.0.1" in job.error_message
    log = (tmp_path / "w.log").read_text()
    assert log.count("Retry in") == settings.task_max_retries  # retried with backoff before giving up
    assert time.monotonic() - started > 2 + 2  # the backoff waited


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []
    fail_first = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.fail_first > 0:
            Receiver.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def callback_url():
    """A receiver of callbacks on a free port for one test (what it gets: Receiver.received), stopped after."""
    Receiver.received, Receiver.fail_first = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/shots"
    server.shutdown()


def wait_for_a_post(timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not Receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)


def test_callback_is_posted_once_signed_and_retried_while_the_receiver_fails(
    worker, celery, store, storage, stack_settings, tmp_path, callback_url
):
    Receiver.fail_first = 1
    video = tmp_path / "cb.mp4"
    write_video(video, [30, 30])
    job = wait(store, submit(celery, store, storage, video, callback_url=callback_url))
    wait_for_a_post()
    time.sleep(1.0)  # a duplicate would arrive by now
    assert job.status == JobStatus.succeeded
    assert len(Receiver.received) == 1 and Receiver.fail_first == 0  # the 503 was retried
    headers, body = Receiver.received[0]
    payload = json.loads(body)
    assert payload["event"] == "job.succeeded" and payload["job"]["id"] == job.id
    assert headers["X-Videoapi-Signature"] == signature(stack_settings.callback_secret, body)


def test_a_callback_queued_again_by_a_redelivered_task_is_posted_once(
    worker, celery, store, storage, tmp_path, callback_url
):
    """A worker killed after queueing the callback but before marking it queued: the ending task's message comes
    back, runs again and queues a second delivery; the one that claimed the job delivers, the other does not."""
    video = tmp_path / "again.mp4"
    write_video(video, [20, 20])
    job = wait(store, submit(celery, store, storage, video, callback_url=callback_url))
    wait_for_a_post()
    assert job.status == JobStatus.succeeded and len(Receiver.received) == 1
    for _ in range(2):  # the killed worker's state: the callback's task was sent, its mark never written
        store.redis.hdel(redis_keys.job(job.id), "callback_queued")
        celery.send_task("videoapi.detect_shots", args=[job.id])  # the message redelivered: the job is over
        celery.send_task("videoapi.deliver_callback", args=[job.id])  # and a delivery queued by hand besides
    time.sleep(4.0)  # the copies have run by now
    assert len(Receiver.received) == 1
    assert store.field(job.id, "callback_queued") == "1"  # the redelivered task queued it (and marked it)


def test_a_fetch_gets_the_length_before_the_body_and_a_refusal_reads_none_of_it(storage, tmp_path):
    """The worker's fetch (ShotDetector: the size limit) is one GET: `check_size` sees the length first."""
    key = f"incoming/{time.time_ns()}-sized.mp4"
    storage.put_bytes(key, b"v" * 1000, "video/mp4")
    seen: list[int] = []

    def refuse(size: int) -> None:
        seen.append(size)
        raise ValueError("too large")

    with pytest.raises(ValueError, match="too large"):
        storage.download(key, tmp_path / "refused", check_size=refuse)
    assert seen == [1000] and not (tmp_path / "refused").exists()
    assert storage.download(key, tmp_path / "taken", check_size=seen.append).read_bytes() == b"v" * 1000
    assert seen == [1000, 1000]


def test_clips_job_runs_in_the_worker_with_progress(worker, celery, store, storage, tmp_path):
    import av

    video = tmp_path / "for clips.mp4"
    write_video(video, [45, 60, 40], fps=25, width=160, height=96, seed=5)
    parent = wait(store, submit(celery, store, storage, video))
    assert parent.status == JobStatus.succeeded
    shots = storage.get_json(parent.result_key)["shots"]
    options = {"parent": parent.id, "mode": "exact", "shots": None, "trim_transitions": False}
    job = store.create(
        bucket=parent.bucket, key=parent.key, threshold=0.5, kind="clips", clip_options=json.dumps(options)
    )
    celery.send_task("videoapi.make_clips", args=[job.id])
    seen = []
    done = wait(store, job.id, seen=seen)
    assert done.status == JobStatus.succeeded, (done.error_code, done.error_message)
    assert done.frames_total == sum(s["end_frame"] - s["start_frame"] + 1 for s in shots) == 145
    manifest = storage.get_json(done.result_key)
    assert done.result_key.startswith(f"results/{parent.id}/clips/{job.id}/")
    for clip, shot in zip(manifest["clips"], shots, strict=True):
        with av.open(io.BytesIO(storage.get_bytes(clip["key"]))) as container:
            assert sum(1 for _ in container.decode(video=0)) == shot["end_frame"] - shot["start_frame"] + 1
    assert storage.size(manifest["zip"]["key"]) > 0

    broken = store.create(
        bucket=parent.bucket,
        key=parent.key,
        threshold=0.5,
        kind="clips",
        clip_options=json.dumps({**options, "shots": [0, 42]}),
    )
    celery.send_task("videoapi.make_clips", args=[broken.id])
    failed = wait(store, broken.id)
    assert (failed.status, failed.error_code) == (JobStatus.failed, "invalid_shots")


def test_post_processed_document_has_typed_transitions_on_exact_frames(worker, celery, store, storage, tmp_path):
    video = tmp_path / "edited.mp4"
    cuts = write_video(video, [50, 40, 70, 60], fps=25, seed=5)
    job = wait(store, submit(celery, store, storage, video, postprocess="1"))
    assert job.status == JobStatus.succeeded, (job.error_code, job.error_message)
    doc = storage.get_json(job.result_key)
    assert doc["postprocess"] is True
    assert [(t["type"], t["start_frame"], t["end_frame"]) for t in doc["transitions"]] == [("cut", c, c) for c in cuts]
    shots = doc["shots"]
    assert [s["start_frame"] for s in shots[1:]] == cuts and "transition" not in shots[0]
    assert [s["transition"] for s in shots[1:]] == [0, 1, 2]
    assert all(a["end_frame"] + 1 == b["start_frame"] for a, b in zip(shots, shots[1:]))


def test_postprocess_off_gives_the_reference_rule(worker, celery, store, storage, tmp_path):
    video = tmp_path / "reference.mp4"
    write_video(video, [50, 40, 70, 60], fps=25, seed=6)
    job = wait(store, submit(celery, store, storage, video, postprocess="0"))
    assert job.status == JobStatus.succeeded, (job.error_code, job.error_message)
    doc = storage.get_json(job.result_key)
    with np.load(io.BytesIO(storage.get_bytes(doc["probabilities"]["key"]))) as probs:
        spans = shot_spans(probs["single_frame"], 0.5)
    assert doc["postprocess"] is False
    assert [(s["start_frame"], s["end_frame"]) for s in doc["shots"]] == spans
    assert {t["type"] for t in doc["transitions"]} <= {"cut"} and len(doc["transitions"]) == len(spans) - 1
