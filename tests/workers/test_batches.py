"""Batches end to end: the API, real Redis, moto S3, Celery workers and Triton over a handful of tiny videos.

A prefix with a file that is no video: every item runs once, the bad one fails with its code, the results read
the same in JSONL, CSV and Parquet; retry runs the failed item again once it is fixed. A worker killed while it
runs an item: the item runs again on the other worker, every item ends once, each shot is in the table once.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid

import av
import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from functions.app import create_app
from functions.deps import Services
from local.synthetic import write_video
from local.worker_process import WorkerProcess

pytestmark = pytest.mark.slow


def _services(settings) -> Services:
    services = Services.from_settings(settings)
    services.jobs.store.redis.flushdb()
    return services


def _client(services: Services) -> tuple[str, dict[str, str]]:
    client_id = f"lib-{uuid.uuid4().hex[:6]}"
    key = services.keys.create(client_id)
    services.keys.set_limits(key, rate_limit=0)
    return client_id, {"X-API-Key": key}


def _video(tmp_path, name: str, shots: list[int], seed: int) -> tuple[bytes, list[int]]:
    path = tmp_path / f"{name}.mp4"
    cuts = write_video(path, shots, fps=25, seed=seed)
    return path.read_bytes(), cuts


def _wait_finished(http: TestClient, auth: dict[str, str], batch_id: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = http.get(f"/v1/batches/{batch_id}", headers=auth).json()
        if batch["status"] != "running":
            return batch
        time.sleep(0.3)
    raise AssertionError(f"the batch did not finish in {timeout_s} s: {batch}")


def _table(http: TestClient, auth: dict[str, str], batch_id: str, fmt: str, items: bool = False) -> list[dict]:
    response = http.get(f"/v1/batches/{batch_id}/results", params={"format": fmt, "items": items}, headers=auth)
    assert response.status_code == 200, response.text
    if fmt == "jsonl":
        return [json.loads(line) for line in response.text.splitlines()]
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(response.text)))
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.field("shot_index" if not items else "status").metadata[b"description"]
    return table.to_pylist()


@pytest.fixture(scope="module")
def batch_stack(stack_settings, tmp_path_factory):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(update={"redis_url": f"{base}/13", "segment_frames": 5000})
    services = _services(settings)
    logs = tmp_path_factory.mktemp("batch-logs")
    with WorkerProcess(settings, concurrency=2, name="batch", log_path=logs / "worker.log"):
        yield settings, services, TestClient(create_app(settings, services=services))


def test_a_prefix_batch_reads_as_one_table_in_three_formats_and_retry_runs_the_failed_item(batch_stack, tmp_path):
    settings, services, http = batch_stack
    client_id, auth = _client(services)
    prefix = f"uploads/{client_id}/library/"
    storage = services.jobs.storage
    cuts = {}
    for index, shots in enumerate(([30, 30], [30, 40, 30], [45])):
        data, cuts[f"v{index}.mp4"] = _video(tmp_path, f"v{index}", shots, seed=index)
        storage.put_bytes(f"{prefix}v{index}.mp4", data, "video/mp4")
    storage.put_bytes(f"{prefix}broken.mp4", b"not a video at all", "video/mp4")

    response = http.post("/v1/batches", json={"sources": {"prefix": prefix}, "tag": "lib"}, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["items"] == 4
    batch = _wait_finished(http, auth, response.json()["id"])
    assert batch["counts"] == {"pending": 0, "queued": 0, "running": 0, "succeeded": 3, "failed": 1, "cancelled": 0}
    assert batch["frames_done"] == 60 + 100 + 45 and batch["seconds_done"] == pytest.approx(8.2, abs=0.1)
    assert batch["throughput"]["items_per_s"] > 0 and batch["links"]["retry"]

    shots = _table(http, auth, batch["id"], "jsonl")
    starts = {item: sorted(r["start_frame"] for r in shots if r["item_id"] == item) for item in cuts}
    assert starts == {item: [0, *c] for item, c in cuts.items()}  # every cut found, each shot once
    first = next(r for r in shots if r["item_id"] == "v1.mp4" and r["shot_index"] == 1)
    assert first["transition_type"] == "cut" and first["source"] == f"s3://{settings.bucket}/{prefix}v1.mp4"
    assert first["start_timecode"] == "00:00:01:05" and first["clip_key"] is None
    as_csv, as_parquet = _table(http, auth, batch["id"], "csv"), _table(http, auth, batch["id"], "parquet")
    assert len(as_csv) == len(as_parquet) == len(shots) == 6
    assert [(r["item_id"], int(r["start_frame"])) for r in as_csv] == [(r["item_id"], r["start_frame"]) for r in shots]
    assert as_parquet == shots
    items = {r["item_id"]: r for r in _table(http, auth, batch["id"], "parquet", items=True)}
    assert items["broken.mp4"]["status"] == "failed" and items["broken.mp4"]["error_code"]
    assert items["v1.mp4"]["shot_count"] == 3 and items["v1.mp4"]["frame_count"] == 100

    data, cuts["broken.mp4"] = _video(tmp_path, "fixed", [35, 30], seed=9)
    storage.put_bytes(f"{prefix}broken.mp4", data, "video/mp4")  # fixed: the retry finds a video
    response = http.post(f"/v1/batches/{batch['id']}/retry", headers=auth)
    assert response.status_code == 200, response.text
    batch = _wait_finished(http, auth, batch["id"])
    assert batch["counts"]["succeeded"] == 4 and batch["counts"]["failed"] == 0
    shots = _table(http, auth, batch["id"], "jsonl")
    assert sorted((r["item_id"], r["shot_index"]) for r in shots) == sorted(
        (item, i) for item, c in cuts.items() for i in range(len(c) + 1)
    )
    assert {r["item_id"]: r["attempts"] for r in _table(http, auth, batch["id"], "jsonl", items=True)}[
        "broken.mp4"
    ] == 2
    again = http.post(f"/v1/batches/{batch['id']}/retry", headers=auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_to_retry"


def test_a_batch_with_clips_writes_each_kept_shot_as_its_item_ends_and_names_it_in_the_table(batch_stack, tmp_path):
    settings, services, http = batch_stack
    client_id, auth = _client(services)
    storage, sources, cuts = services.jobs.storage, [], {}
    for index, shots in enumerate(([30, 30], [45, 20])):  # 1.2, 1.2, 1.8 and 0.8 s
        data, cuts[f"c{index}"] = _video(tmp_path, f"c{index}", shots, seed=30 + index)
        key = f"uploads/{client_id}/clips/{index}.mp4"
        storage.put_bytes(key, data, "video/mp4")
        sources.append({"source": key, "id": f"shots/c{index}"})
    elsewhere = {"sources": sources, "clips": {"prefix": "s3://someone-elses/clips/"}}
    refused = http.post("/v1/batches", json=elsewhere, headers=auth)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "clips.prefix", refused.text
    bounds = {"sources": sources, "clips": {"min_duration_s": 2, "max_duration_s": 1}}
    assert http.post("/v1/batches", json=bounds, headers=auth).status_code == 422

    clips = {"mode": "exact", "min_duration_s": 1.0, "prefix": "train"}
    response = http.post("/v1/batches", json={"sources": sources, "clips": clips}, headers=auth)
    assert response.status_code == 202, response.text
    batch = _wait_finished(http, auth, response.json()["id"])
    assert batch["counts"]["succeeded"] == 2 and batch["done"] == 2, batch
    assert batch["frames_done"] == 60 + 65  # each item counted once, not once for its shots and once for its clips

    shots = _table(http, auth, batch["id"], "jsonl")
    assert [(r["item_id"], r["start_frame"], r["end_frame"]) for r in shots] == [
        ("shots/c0", 0, 29),
        ("shots/c0", 30, 59),
        ("shots/c1", 0, 44),
        ("shots/c1", 45, 64),
    ]
    assert shots[3]["clip_key"] is None  # 0.8 s: under min_duration_s
    folder = f"batches/{batch['id']}/clips/train/000001-shots_c0/"
    assert shots[0]["clip_key"] == folder + "shot_00000.mp4"
    for row in shots[:3]:
        link = http.get(f"/v1/batches/{batch['id']}/clip", params={"key": row["clip_key"]}, headers=auth)
        assert link.status_code == 200, link.text
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(httpx.get(link.json()["url"]).raise_for_status().content)
        with av.open(str(clip)) as container:  # exact: the shot's frames, no more
            assert sum(1 for _ in container.decode(video=0)) == row["end_frame"] - row["start_frame"] + 1
    stray = http.get(f"/v1/batches/{batch['id']}/clip", params={"key": "uploads/x.mp4"}, headers=auth)
    assert stray.status_code == 404 and stray.json()["error"]["code"] == "clip_not_found"
    jobs = services.jobs.store.list_for(client_id, 10)
    assert sorted(job.extra.get("kind", "detect") for job in jobs) == ["clips", "clips", "detect", "detect"]
    # a clips job is the client's like any: its manifest through the jobs API, no zip, each clip's URL fetchable
    clips_job = next(job for job in jobs if job.extra.get("kind") == "clips" and job.tag == "shots/c0")
    manifest = http.get(f"/v1/jobs/{clips_job.id}/result", headers=auth)
    assert manifest.status_code == 200, manifest.text
    assert manifest.json()["zip"] is None and len(manifest.json()["clips"]) == 2
    assert httpx.get(manifest.json()["clips"][1]["url"]).raise_for_status().content[4:8] == b"ftyp"


def test_a_worker_killed_mid_batch_every_item_ends_once_and_each_shot_is_in_the_table_once(stack_settings, tmp_path):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(
        update={
            "redis_url": f"{base}/9",
            "segment_frames": 27_000,
            "lease_s": 6.0,
            "lease_renew_s": 1.0,
            "reaper_interval_s": 1.0,
        }
    )
    services = _services(settings)
    http = TestClient(create_app(settings, services=services))
    client_id, auth = _client(services)
    storage, cuts = services.jobs.storage, {}
    sources = []
    for index, shots in enumerate(([30, 30], [300, 300, 300], [35, 30], [30, 40])):  # item 1 is long: killed in it
        data, cuts[f"v{index}"] = _video(tmp_path, f"k{index}", shots, seed=20 + index)
        key = f"uploads/{client_id}/k/{index}.mp4"
        storage.put_bytes(key, data, "video/mp4")
        sources.append({"source": key, "id": f"v{index}"})
    workers = {
        name: WorkerProcess(settings, concurrency=1, name=name, log_path=tmp_path / f"{name}.log").start()
        for name in ("kill-a", "kill-b")
    }
    try:
        batch_id = http.post("/v1/batches", json={"sources": sources}, headers=auth).json()["id"]
        long_job = None
        deadline = time.monotonic() + 120
        while long_job is None and time.monotonic() < deadline:
            for job in services.jobs.store.list_for(client_id, 10):
                if job.tag == "v1" and job.status.value == "running" and job.frames_done >= 100:
                    long_job = job
            time.sleep(0.1)
        assert long_job is not None, "the long item never ran"
        # the job record names the machine and the pool process: the worker is the one whose process that is
        pid = json.loads(long_job.extra["worker"])["pid"]
        owners = {pid, psutil.Process(pid).ppid()}
        victim = next(name for name, worker in workers.items() if worker.pid in owners)
        workers[victim].kill()  # the whole worker, as when its node is lost
        batch = _wait_finished(http, auth, batch_id, timeout_s=150)
    finally:
        for worker in workers.values():
            worker.stop()
    assert batch["counts"]["succeeded"] == 4 and batch["done"] == 4, batch
    jobs = services.jobs.store.list_for(client_id, 10)
    assert len(jobs) == 4 and all(job.status.value == "succeeded" for job in jobs)
    assert next(job for job in jobs if job.tag == "v1").extra["attempts"] == "2"  # run again after the kill
    shots = _table(http, auth, batch_id, "jsonl")
    keys = [(r["item_id"], r["shot_index"]) for r in shots]
    assert len(keys) == len(set(keys)) == sum(len(c) + 1 for c in cuts.values())
