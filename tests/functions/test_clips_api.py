"""Per-shot clips and the source video through the HTTP API: real moto S3, Redis, Triton, PyAV."""

from __future__ import annotations

import io
import zipfile

import av
import httpx
import numpy as np
import pytest
import redis

from local.synthetic import write_video
from videoapi.pipeline.clips import ClipMaker


def decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def finished_job(http, keys, run_job, tmp_path_factory):
    """A detection job that has run, with its video's bytes and the shot document."""
    alice = {"X-API-Key": keys["alice"]}
    path = tmp_path_factory.mktemp("clips") / "three.mp4"
    write_video(path, [50, 40, 60], fps=25, width=160, height=96, seed=2)
    data = path.read_bytes()
    presigned = http.post(
        "/v1/uploads",
        json={"filename": "three.mp4", "content_type": "video/mp4", "size_bytes": len(data)},
        headers=alice,
    ).json()
    assert httpx.put(presigned["url"], content=data, headers=presigned["headers"]).status_code == 200
    job = http.post("/v1/jobs", json={"source": presigned["key"]}, headers=alice).json()
    early = http.post(f"/v1/jobs/{job['id']}/clips", json={}, headers=alice)
    assert early.status_code == 409 and early.json()["error"]["code"] == "job_not_finished"
    run_job(job["id"])
    document = http.get(f"/v1/jobs/{job['id']}/result", headers=alice).json()
    return job["id"], data, document


def make_clips(http, services, api_settings, alice, job_id: str, body: dict) -> dict:
    response = http.post(f"/v1/jobs/{job_id}/clips", json=body, headers=alice)
    assert response.status_code == 202, response.text
    clips_job = response.json()
    assert clips_job["kind"] == "clips" and clips_job["parent_job_id"] == job_id and clips_job["status"] == "queued"
    ClipMaker(api_settings, services.jobs.store, services.jobs.storage).run(clips_job["id"])  # what the worker does
    status = http.get(f"/v1/jobs/{clips_job['id']}", headers=alice).json()
    assert status["status"] == "succeeded" and status["progress"] == 100.0
    manifest = http.get(status["links"]["json"], headers=alice).json()
    assert manifest["prefix"] == f"results/{job_id}/clips/{clips_job['id']}/"
    return manifest


def test_exact_clips_land_in_s3_with_presigned_urls_and_a_zip(http, alice, services, api_settings, finished_job):
    job_id, data, document = finished_job
    source = decoded(data)
    manifest = make_clips(http, services, api_settings, alice, job_id, {"mode": "exact"})
    assert [c["shot"] for c in manifest["clips"]] == [s["index"] for s in document["shots"]]
    for clip, shot in zip(manifest["clips"], document["shots"]):
        response = httpx.get(clip["url"])
        assert response.headers["content-disposition"] == f'attachment; filename="{clip["file"]}"'  # a download
        frames = decoded(response.content)
        assert len(frames) == clip["frame_count"] == shot["end_frame"] - shot["start_frame"] + 1
        assert np.abs(frames[0].astype(int) - source[shot["start_frame"]]).mean() < 3
    archive = zipfile.ZipFile(io.BytesIO(httpx.get(manifest["zip"]["url"]).content))
    assert sorted(archive.namelist()) == sorted(c["file"] for c in manifest["clips"])


def test_copy_clips_state_where_they_really_start_and_end(http, alice, services, api_settings, finished_job):
    job_id, data, document = finished_job
    manifest = make_clips(http, services, api_settings, alice, job_id, {"mode": "copy", "shots": [1, 2]})
    assert "keyframe" in manifest["note"] and [c["shot"] for c in manifest["clips"]] == [1, 2]
    for clip in manifest["clips"]:
        shot = document["shots"][clip["shot"]]
        assert clip["start_frame"] <= shot["start_frame"] and clip["end_frame"] >= shot["end_frame"]
        assert (clip["requested_start_frame"], clip["requested_end_frame"]) == (shot["start_frame"], shot["end_frame"])
        assert len(decoded(httpx.get(clip["url"]).content)) == clip["end_frame"] - clip["start_frame"] + 1
        assert clip["start_time"] == pytest.approx(clip["start_frame"] / 25)


def test_a_clips_job_that_could_not_be_queued_leaves_no_record_and_no_quota_place(http, alice, services, finished_job):
    job_id, _, _ = finished_job
    jobs = services.jobs
    client_id = jobs.store.get(job_id).client_id
    before = {job.id for job in jobs.store.list_for(client_id, 1000)}
    active = jobs.quotas.active(client_id)

    def redis_gone(*args, **kwargs):
        raise redis.ConnectionError("Redis went away before the transaction ran")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs.fair, "push", redis_gone)
        response = http.post(f"/v1/jobs/{job_id}/clips", json={"mode": "copy"}, headers=alice)
    assert response.status_code == 503 and response.json()["error"]["code"], response.text
    assert {job.id for job in jobs.store.list_for(client_id, 1000)} == before
    assert jobs.quotas.active(client_id) == active


def test_bad_clip_requests_are_4xx_naming_the_field(http, alice, bob, finished_job):
    job_id, _, _ = finished_job
    for body, field in (({"shots": [0, 99]}, "shots"), ({"mode": "fast"}, "mode"), ({"shots": [-1]}, "shots")):
        response = http.post(f"/v1/jobs/{job_id}/clips", json=body, headers=alice)
        assert response.status_code == 422 and field in response.json()["error"]["field"], response.text
    assert http.post(f"/v1/jobs/{job_id}/clips", json={}, headers=bob).status_code == 404


def test_source_video_plays_through_a_presigned_get(http, alice, bob, finished_job):
    job_id, data, _ = finished_job
    status = http.get(f"/v1/jobs/{job_id}", headers=alice).json()
    video = http.get(status["links"]["video"], headers=alice)
    assert video.status_code == 200 and video.json()["expires_in"] > 0
    assert httpx.get(video.json()["url"]).content == data
    assert http.get(f"/v1/jobs/{job_id}/video", headers=bob).status_code == 404
