"""Checkpoints: a task stopped mid-video resumes from its last checkpoint and gives an uninterrupted run's result.

Real Triton, Redis and moto S3; the detector runs in this process (the workers' tests kill real ones).
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from local.synthetic import write_video
from videoapi.adapters.storage import Storage
from videoapi.adapters.triton import ShotModelClient
from videoapi.domain.jobs import JobStatus, JobStore
from videoapi.domain.leases import Drain
from videoapi.errors import Preempted
from videoapi.pipeline.detection import FRAMES_INFERRED_FIELD, ShotDetector

pytestmark = [pytest.mark.reliability]


@pytest.fixture
def ckpt_settings(stack_settings):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    return stack_settings.model_copy(update={"redis_url": f"{base}/13", "segment_frames": 27_000})


def _probabilities(storage: Storage, document: dict) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(storage.get_bytes(document["probabilities"]["key"]))) as data:
        return {name: data[name] for name in data.files}


class WorkerDied(Exception):
    """Stands for the death of the process: what it had not checkpointed is lost."""


@pytest.mark.parametrize(
    "how, windows, inflight, saved, recomputed_at_most",
    [
        # killed while inferring frames 300..449: the checkpoints of 0..149 and 150..299 stay; 150 frames again
        ("killed", 3, 2, ["part-000000000-000000150.npz", "part-000000150-000000300.npz"], 150),
        # scale-in at frame 200 of a 400-frame interval: it checkpoints at once, at the next grid frame (250);
        # only the padded window past the cut is thrown away
        ("leaving", 8, 1, ["part-000000000-000000250.npz"], 25),
    ],
)
def test_a_resumed_job_equals_an_uninterrupted_run(
    ckpt_settings, tmp_path, how, windows, inflight, saved, recomputed_at_most
):
    settings = ckpt_settings.model_copy(update={"checkpoint_windows": windows, "inflight_batches": inflight})
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / "ckpt.mp4"
    write_video(video, [160, 240, 130, 220, 150], fps=25, width=160, height=90, seed=11)  # 900 frames
    key = "incoming/checkpoints/ckpt.mp4"
    storage.put_bytes(key, video.read_bytes(), "video/mp4")
    with ShotModelClient(settings.triton_url) as model:
        no_checkpoints = settings.model_copy(update={"checkpoint_windows": 0})
        uninterrupted = ShotDetector(no_checkpoints, store, storage, lambda: model)
        plain = store.create(bucket=storage.bucket, key=key, threshold=0.5)
        expected = uninterrupted.begin(plain.id)

        detector = ShotDetector(settings, store, storage, lambda: model)
        job = store.create(bucket=storage.bucket, key=key, threshold=0.5)

        def inferred() -> int:
            return int(store.field(job.id, FRAMES_INFERRED_FIELD) or 0)

        def dies(eta_s: float) -> bool:
            if inferred() >= 400:
                raise WorkerDied
            return False

        if how == "killed":
            with pytest.raises(WorkerDied):
                detector.begin(job.id, dies)
        else:
            with pytest.raises(Preempted):  # as a worker leaving at scale-in: after its first batch
                detector.begin(job.id, lambda eta_s: inferred() >= 200)
        assert [k.rsplit("/", 1)[1] for k in store.redis.lrange(f"parts:{job.id}:{0:09d}", 0, -1)] == saved
        assert store.get(job.id).status == JobStatus.running
        stopped_at = inferred()
        resume_at = int(saved[-1].removesuffix(".npz").rsplit("-", 1)[1])

        document = detector.begin(job.id)  # the retry: decodes from the checkpoint's frame - 25, infers from it
    recomputed = inferred() - 900
    print(f"{how}: frames inferred before the stop {stopped_at}, in all {inferred()}, recomputed {recomputed}")
    assert 0 <= recomputed <= recomputed_at_most
    assert inferred() - stopped_at == 900 - resume_at  # the retry inferred the frames after the checkpoint only
    assert store.get(job.id).status == JobStatus.succeeded

    got, want = _probabilities(storage, document), _probabilities(storage, expected)
    assert got["single_frame"].shape == want["single_frame"].shape == (900,)
    for name in ("single_frame", "many_hot"):  # Triton batches the windows differently: float noise only
        assert np.abs(got[name] - want[name]).max() < 1e-5, name
    for field in ("shots", "transitions", "technical_cues", "warnings", "shot_count"):
        assert document.get(field) == expected.get(field), field
    assert {**document["previews"]["thumbnails"], "key": ""} == {**expected["previews"]["thumbnails"], "key": ""}
    assert storage.get_bytes(document["previews"]["overview"]["key"]) == storage.get_bytes(
        expected["previews"]["overview"]["key"]
    )
    # the checkpoints are scratch: gone once the job succeeded
    assert not storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=f"work/{job.id}/").get("Contents")
    assert not list(store.redis.scan_iter(match=f"parts:{job.id}*"))


def test_a_draining_worker_lets_a_task_finish_that_fits_in_its_grace(ckpt_settings):
    client = JobStore.from_url(ckpt_settings.redis_url).redis
    drain = Drain(client, "leaving@host")
    assert not drain.must_yield(3600.0)  # not draining: never yields
    drain.begin(grace_s=30.0)
    assert not drain.must_yield(5.0) and drain.must_yield(60.0)
    assert not Drain(client, "staying@host").must_yield(60.0)  # only the worker that got SIGTERM
    drain.end()
    assert not drain.must_yield(60.0)


def test_a_segment_of_a_split_job_resumes_from_its_checkpoint_and_stitches_exactly(ckpt_settings, tmp_path):
    """The chord's path: a segment stopped at scale-in resumes from its checkpoint; the stitch equals one pass."""
    settings = ckpt_settings.model_copy(update={"segment_frames": 450, "checkpoint_windows": 8, "inflight_batches": 1})
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / "split.mp4"
    write_video(video, [160, 240, 130, 220, 150], fps=25, width=160, height=90, seed=13)  # 900 frames
    key = "incoming/checkpoints/split.mp4"
    storage.put_bytes(key, video.read_bytes(), "video/mp4")
    with ShotModelClient(settings.triton_url) as model:
        whole = ShotDetector(
            settings.model_copy(update={"segment_frames": 27_000, "checkpoint_windows": 0}),
            store,
            storage,
            lambda: model,
        )
        expected = whole.begin(store.create(bucket=storage.bucket, key=key, threshold=0.5).id)
        detector = ShotDetector(settings, store, storage, lambda: model)
        job = store.create(bucket=storage.bucket, key=key, threshold=0.5)
        segments = detector.begin(job.id)
        assert [(s.start, s.stop) for s in segments] == [(0, 450), (450, None)]
        first = detector.run_segment(job.id, segments[0])
        with pytest.raises(Preempted):  # the second segment's worker leaves after its first batch
            detector.run_segment(job.id, segments[1], lambda eta_s: True)
        saved = store.redis.lrange(f"parts:{job.id}:{450:09d}", 0, -1)
        # its first batch inferred 450..649 and the decoder had reached 674: cut at the next grid frame, 700
        assert [k.rsplit("/", 1)[1] for k in saved] == ["part-000000450-000000700.npz"]
        second = detector.run_segment(job.id, segments[1])  # the re-queued task, on another worker
        assert [k.rsplit("/", 1)[1] for k in second] == ["part-000000450-000000700.npz", "part-000000700-end.npz"]
        document = detector.stitch(job.id, [first, second])
    assert store.get(job.id).status == JobStatus.succeeded
    got, want = _probabilities(storage, document), _probabilities(storage, expected)
    for name in ("single_frame", "many_hot"):
        assert got[name].shape == (900,) and np.abs(got[name] - want[name]).max() < 1e-5, name
    for field in ("transitions", "technical_cues", "warnings", "shot_count"):
        assert document.get(field) == expected.get(field), field
    assert [(s["start_frame"], s["end_frame"]) for s in document["shots"]] == [
        (s["start_frame"], s["end_frame"]) for s in expected["shots"]
    ]
    assert not list(store.redis.scan_iter(match=f"parts:{job.id}*"))


@pytest.mark.parametrize(
    "windows, parts",
    [
        # 400 frames a part: 800..899 would be a part of 100 frames, so 400..899 is one part instead
        (8, ["part-000000000-000000400.npz", "part-000000400-end.npz"]),
        # 1,000 frames a part: the 900 frames are under 1.5 parts, one pass with nothing written to read back
        (20, []),
    ],
)
def test_a_short_last_part_joins_the_one_before_and_a_one_part_job_runs_in_one_pass(
    ckpt_settings, tmp_path, monkeypatch, windows, parts
):
    """A part is written to S3, read back, and opens and seeks the video again: no part only a few frames long."""
    settings = ckpt_settings.model_copy(update={"checkpoint_windows": windows})  # window 100: 50 frames each
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / "tail.mp4"
    write_video(video, [160, 240, 130, 220, 150], fps=25, width=160, height=90, seed=11)  # 900 frames
    key = "incoming/checkpoints/tail.mp4"
    storage.put_bytes(key, video.read_bytes(), "video/mp4")
    written: list[str] = []
    put = storage.put_bytes
    monkeypatch.setattr(storage, "put_bytes", lambda k, *a, **kw: (written.append(k), put(k, *a, **kw))[1])
    with ShotModelClient(settings.triton_url) as model:
        job = store.create(bucket=storage.bucket, key=key, threshold=0.5)
        document = ShotDetector(settings, store, storage, lambda: model).begin(job.id)
    assert [k.rsplit("/", 1)[1] for k in written if "/part-" in k] == parts
    assert document["video"]["frame_count"] == 900 and store.get(job.id).status == JobStatus.succeeded
