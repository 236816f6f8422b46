"""The HTTP API through FastAPI's test client: uploads, jobs, results, auth, validation."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import parse_qs, urlparse

import cv2
import httpx
import numpy as np
import opentimelineio as otio
import pytest

from local.synthetic import write_video
from videoapi.errors import VideoRejected
from videoapi.pipeline.detection import STAGES_FIELD, as_job_error


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("api") / "clip.mp4"
    write_video(path, [50, 40, 60], fps=25)
    return path.read_bytes()


def upload(http, headers, data: bytes, filename="clip.mp4") -> str:
    presigned = http.post(
        "/v1/uploads",
        json={"filename": filename, "content_type": "video/mp4", "size_bytes": len(data)},
        headers=headers,
    )
    assert presigned.status_code == 201, presigned.text
    body = presigned.json()
    put = httpx.put(body["url"], content=data, headers=body["headers"])
    assert put.status_code == 200, put.text
    return body["key"]


def test_presigned_put_carries_the_size_and_type_and_expires(http, alice, services, video_bytes):
    response = http.post(
        "/v1/uploads",
        json={"filename": "clip.mp4", "content_type": "video/mp4", "size_bytes": len(video_bytes)},
        headers=alice,
    )
    body = response.json()
    assert response.status_code == 201 and body["method"] == "PUT" and body["max_bytes"] == len(video_bytes)
    assert body["key"].startswith("uploads/alice/") and body["key"].endswith("/clip.mp4")
    query = parse_qs(urlparse(body["url"]).query)
    assert query["X-Amz-SignedHeaders"][0].split(";") >= ["content-length", "content-type"]
    assert query["X-Amz-Expires"] == [str(body["expires_in"])]
    assert body["post"]["fields"]["key"] == body["key"] and "policy" in body["post"]["fields"]

    assert httpx.put(body["url"], content=video_bytes, headers=body["headers"]).status_code == 200
    assert services.jobs.storage.size(body["key"]) == len(video_bytes)


def test_post_policy_limits_size_type_and_time(http, alice):
    """S3 enforces the policy it signed (moto does not check it, so the policy itself is read here)."""
    import base64
    import time

    body = http.post(
        "/v1/uploads", json={"filename": "clip.mp4", "content_type": "video/mp4", "size_bytes": 1000}, headers=alice
    ).json()
    policy = json.loads(base64.b64decode(body["post"]["fields"]["policy"]))
    assert ["content-length-range", 1, 1000] in policy["conditions"]
    assert {"Content-Type": "video/mp4"} in policy["conditions"] and {"key": body["key"]} in policy["conditions"]
    expires = time.mktime(time.strptime(policy["expiration"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 0 < expires - time.time() <= body["expires_in"] + 5


def test_an_https_url_source_is_queued_for_the_worker_to_fetch(http, alice):
    url = "https://example.com/clips/v.mp4?X-Amz-Signature=abc"
    submitted = http.post("/v1/jobs", json={"source": url}, headers=alice)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["source"] == url


def test_submit_status_result_in_every_format(http, alice, video_bytes, run_job, services):
    key = upload(http, alice, video_bytes)
    submitted = http.post("/v1/jobs", json={"source": key, "tag": "ep1", "formats": ["json", "edl"]}, headers=alice)
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["status"] == "queued" and job["tag"] == "ep1" and job["id"].startswith("job_") and len(job["id"]) == 36
    assert submitted.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert services.jobs.store.redis.llen("shots") >= 1  # the task is on the broker's queue

    assert http.get(f"/v1/jobs/{job['id']}/result", headers=alice).status_code == 409
    run_job(job["id"])

    status = http.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert status["status"] == "succeeded" and status["progress"] == 100.0 and status["error"] is None
    assert status["started_at"] <= status["finished_at"] and status["created_at"].endswith("Z")
    stages = json.loads(services.jobs.store.get(job["id"]).extra[STAGES_FIELD])  # where the worker's time went
    assert set(stages) == {"fetch", "probe", "predict", "publish"} and stages["predict"] > 0
    assert all(0 <= seconds < 60 for seconds in stages.values())

    document = http.get(status["links"]["json"], headers=alice).json()
    assert document["video"]["frame_count"] == 150 and document["shot_count"] == len(document["shots"]) == 3
    starts = [s["start_frame"] for s in document["shots"]]
    assert all(abs(a - b) <= 2 for a, b in zip(starts, [0, 50, 90]))

    as_csv = http.get(status["links"]["csv"], headers=alice)
    assert as_csv.headers["content-type"].startswith("text/csv")
    every_row = list(csv.DictReader(io.StringIO(as_csv.text)))
    rows = [r for r in every_row if r["kind"] == "shot"]
    cues = [r for r in every_row if r["kind"] == "technical_cue"]
    assert [(r["cue_type"], r["start_frame"]) for r in cues] == [
        (c["type"], str(c["start_frame"])) for c in document["technical_cues"]
    ]
    assert [r["transition_type"] for r in rows[1:]] == [t["type"] for t in document["transitions"]]
    assert [int(r["start_frame"]) for r in rows] == starts and rows[1]["start_timecode"] == document["shots"][1][
        "start_timecode"
    ]

    # every timeline export read back with OpenTimelineIO: a clip per shot, exact source ranges
    for fmt, adapter in (("edl", "cmx_3600"), ("otio", "otio_json"), ("xml", "fcp_xml"), ("fcpxml", "fcpx_xml")):
        for start, offset in ((None, 0), ("01:00:00:00", 90_000)):
            query = f"&start_timecode={start}" if start else ""
            response = http.get(status["links"][fmt] + query, headers=alice)
            assert response.status_code == 200, response.text
            assert response.headers["content-disposition"].endswith(f'.{fmt}"')
            timeline = otio.adapters.read_from_string(response.text, adapter, **({"rate": 25} if fmt == "edl" else {}))
            clips = list(timeline.find_clips())
            assert [(c.source_range.start_time.to_frames(), c.source_range.duration.to_frames()) for c in clips] == [
                (offset + s["start_frame"], s["end_frame"] - s["start_frame"] + 1) for s in document["shots"]
            ]
    bad = http.get(status["links"]["otio"] + "&start_timecode=01:00:00:25", headers=alice)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "start_timecode"
    qp = http.get(status["links"]["qp"], headers=alice).text.splitlines()
    assert qp == [f"{s['start_frame']} I -1" for s in document["shots"]]

    probs = http.get(status["links"]["probabilities"], headers=alice)
    with np.load(io.BytesIO(probs.content)) as arrays:
        assert arrays["single_frame"].shape == (150,)
        single = arrays["single_frame"]

    curve = http.get(status["links"]["curve"], headers=alice).json()
    assert curve["stride"] == 1 and curve["frame_count"] == 150 and curve["threshold"] == 0.5
    assert np.allclose(curve["single_frame"], single, atol=1e-4) and len(curve["many_hot"]) == 150

    overview = http.get(status["links"]["overview"], headers=alice)
    assert overview.headers["content-type"] == "image/png"
    picture = cv2.imdecode(np.frombuffer(overview.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (6 * 28, 25 * 50, 3)  # 150 frames, 25 a row, 48x27 each with two bars and a gap

    thumbnails = http.get(status["links"]["thumbnails"], headers=alice)
    assert thumbnails.headers["content-type"] == "image/jpeg"
    sheet = document["previews"]["thumbnails"]
    assert sheet["count"] == 3 and sheet["keyframes"] == [s["keyframe"] for s in document["shots"]]
    assert all(s["start_frame"] <= s["keyframe"] <= s["end_frame"] for s in document["shots"])
    tiles = cv2.imdecode(np.frombuffer(thumbnails.content, np.uint8), cv2.IMREAD_COLOR)
    assert tiles.shape == (sheet["tile_height"], 3 * sheet["tile_width"], 3) and sheet["tile_width"] == 160


def test_idempotency_key(http, alice, video_bytes):
    key = upload(http, alice, video_bytes)
    headers = {**alice, "Idempotency-Key": "order-42"}
    first = http.post("/v1/jobs", json={"source": key}, headers=headers)
    again = http.post("/v1/jobs", json={"source": key}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    different = http.post("/v1/jobs", json={"source": key, "threshold": 0.3}, headers=headers)
    assert different.status_code == 409 and different.json()["error"]["code"] == "idempotency_key_reused"
    # the same key from another client is another client's business
    assert http.post("/v1/jobs", json={"source": key}, headers={**headers, "X-API-Key": "nope"}).status_code == 401


def test_a_client_sees_only_its_own_jobs_and_uploads(http, alice, bob, video_bytes):
    key = upload(http, alice, video_bytes)
    job = http.post("/v1/jobs", json={"source": key}, headers=alice).json()
    for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/result"):
        response = http.get(path, headers=bob)
        assert response.status_code == 404 and response.json()["error"]["code"] == "job_not_found"
    assert job["id"] in [j["id"] for j in http.get("/v1/jobs", headers=alice).json()["jobs"]]
    assert job["id"] not in [j["id"] for j in http.get("/v1/jobs", headers=bob).json()["jobs"]]
    stolen = http.post("/v1/jobs", json={"source": key}, headers=bob)
    assert stolen.status_code == 404 and stolen.json()["error"]["field"] == "source"
    assert http.get("/v1/jobs/job_" + "0" * 32, headers=alice).status_code == 404


@pytest.mark.parametrize(
    "path,body,status,code,field",
    [
        (
            "/v1/uploads",
            {"filename": "a.mp4", "size_bytes": 10, "content_type": "text/plain"},
            415,
            "unsupported_content_type",
            "content_type",
        ),
        ("/v1/uploads", {"filename": "a.mp4", "size_bytes": 10**13}, 413, "too_large", "size_bytes"),
        ("/v1/uploads", {"filename": "../../etc/passwd", "size_bytes": 10}, 422, "invalid_filename", "filename"),
        ("/v1/uploads", {"filename": "a/b.mp4", "size_bytes": 10}, 422, "invalid_filename", "filename"),
        ("/v1/uploads", {"filename": "evil\u202e4pm.exe", "size_bytes": 10}, 422, "invalid_filename", "filename"),
        ("/v1/uploads", {"filename": "x" * 256 + ".mp4", "size_bytes": 10}, 422, "invalid_request", "filename"),
        ("/v1/uploads", {"filename": "a.mp4"}, 422, "invalid_request", "size_bytes"),
        ("/v1/uploads", {"filename": "a.mp4", "size_bytes": -1}, 422, "invalid_request", "size_bytes"),
        ("/v1/jobs", {}, 422, "invalid_request", "source"),
        ("/v1/jobs", {"source": "uploads/alice/x/../../bob/y.mp4"}, 422, "invalid_key", "source"),
        ("/v1/jobs", {"source": "/etc/passwd"}, 422, "invalid_key", "source"),
        ("/v1/jobs", {"source": "s3://someone-elses-bucket/v.mp4"}, 422, "bucket_not_allowed", "source"),
        ("/v1/jobs", {"source": "http://example.com/v.mp4"}, 422, "source_not_allowed", "source"),
        ("/v1/jobs", {"source": "uploads/alice/nothing-here.mp4"}, 404, "source_not_found", "source"),
        ("/v1/jobs", {"source": "uploads/alice/x.mp4", "threshold": 1.5}, 422, "invalid_request", "threshold"),
        ("/v1/jobs", {"source": "uploads/alice/x.mp4", "formats": ["pdf"]}, 422, "invalid_request", "formats.0"),
        (
            "/v1/jobs",
            {"source": "uploads/alice/x.mp4", "callback_url": "http://127.0.0.1:8080/hook"},
            422,
            "callback_url_not_allowed",
            "callback_url",
        ),
        (
            "/v1/jobs",
            {"source": "uploads/alice/x.mp4", "callback_url": "http://10.1.2.3/hook"},
            422,
            "callback_url_not_allowed",
            "callback_url",
        ),
        (
            "/v1/jobs",
            {"source": "uploads/alice/x.mp4", "callback_url": "ftp://example.com/x"},
            422,
            "invalid_callback_url",
            "callback_url",
        ),
    ],
)
def test_bad_requests_get_a_json_error_naming_the_field(http, alice, path, body, status, code, field):
    response = http.post(path, json=body, headers=alice)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error.get("field")) == (code, field) and error["message"]


def test_not_json_at_all(http, alice):
    response = http.post("/v1/jobs", content=b"{nope", headers={**alice, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "vapi_wrong"}])
def test_requests_without_a_valid_key_are_401(http, headers):
    response = http.get("/v1/jobs/job_x", headers=headers)
    assert response.status_code == 401 and response.json()["error"] == {
        "code": "unauthorized",
        "message": "a valid API key is required in the X-API-Key header",
        "field": "X-API-Key",
    }


def test_api_keys_are_stored_hashed(services, keys):
    stored = services.jobs.store.redis.hgetall("apikeys")
    assert keys["alice"] not in json.dumps(stored) and stored  # only digests are kept
    assert len(next(iter(stored))) == 64


def test_direct_upload_small_file_and_cap(http, alice, video_bytes, api_settings):
    ok = http.put(
        "/v1/uploads/direct",
        params={"filename": "small.mp4"},
        content=video_bytes,
        headers={**alice, "Content-Type": "video/mp4"},
    )
    assert ok.status_code == 201 and ok.json()["size_bytes"] == len(video_bytes)
    assert http.post("/v1/jobs", json={"source": ok.json()["key"]}, headers=alice).status_code == 202
    big = b"\0" * (api_settings.direct_upload_max_bytes + 1)
    refused = http.put(
        "/v1/uploads/direct",
        params={"filename": "big.mp4"},
        content=big,
        headers={**alice, "Content-Type": "video/mp4"},
    )
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
    wrong_type = http.put(
        "/v1/uploads/direct",
        params={"filename": "a.txt"},
        content=b"hi",
        headers={**alice, "Content-Type": "text/plain"},
    )
    assert wrong_type.status_code == 415


def test_a_direct_upload_is_submitted_without_a_head_and_its_size_still_counts(
    http, alice, video_bytes, services, api_settings, monkeypatch
):
    heads: list[str] = []
    events, event = services.jobs.storage.client.meta.events, "before-parameter-build.s3.HeadObject"
    events.register(event, lambda params, **_: heads.append(params["Key"]), "count-heads")
    try:
        direct = http.put(
            "/v1/uploads/direct",
            params={"filename": "noted.mp4"},
            content=video_bytes,
            headers={**alice, "Content-Type": "video/mp4"},
        ).json()["key"]
        submitted = http.post("/v1/jobs", json={"source": direct}, headers=alice)
        assert submitted.status_code == 202 and submitted.json()["source"].endswith(direct)
        assert heads == []  # the API stored it: its size was noted, S3 was not asked

        presigned = upload(http, alice, video_bytes)  # stored by the client: S3 is asked
        assert http.post("/v1/jobs", json={"source": presigned}, headers=alice).status_code == 202
        assert heads == [presigned]

        missing = "uploads/alice/0123456789abcdef/never-stored.mp4"
        answer = http.post("/v1/jobs", json={"source": missing}, headers=alice)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "source_not_found"
        assert heads == [presigned, missing]

        monkeypatch.setattr(api_settings, "max_video_bytes", len(video_bytes) - 1)
        too_large = http.post("/v1/jobs", json={"source": direct}, headers=alice)
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "too_large"
        assert str(len(video_bytes)) in too_large.json()["error"]["message"] and len(heads) == 2
    finally:
        events.unregister(event, unique_id="count-heads")


def test_failed_job_result_is_409_with_the_reason(http, alice, run_job):
    key = http.put(
        "/v1/uploads/direct",
        params={"filename": "junk.mp4"},
        content=b"not a video" * 100,
        headers={**alice, "Content-Type": "video/mp4"},
    ).json()["key"]
    job = http.post("/v1/jobs", json={"source": key}, headers=alice).json()
    with pytest.raises(VideoRejected) as caught:
        run_job(job["id"])
    error = as_job_error(caught.value)  # what the worker's task adapter records
    http.app.state.services.jobs.store.fail(job["id"], error.code, error.message)
    status = http.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert status["status"] == "failed" and status["error"]["code"] == "not_a_video"
    result = http.get(f"/v1/jobs/{job['id']}/result", headers=alice)
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_failed"


def test_cancel_a_queued_job_only_by_its_owner(http, alice, bob, video_bytes, run_job):
    job = http.post("/v1/jobs", json={"source": upload(http, alice, video_bytes)}, headers=alice).json()
    assert job["links"]["cancel"] == f"/v1/jobs/{job['id']}/cancel"
    stolen = http.post(f"/v1/jobs/{job['id']}/cancel", headers=bob)
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "job_not_found"
    assert http.get(f"/v1/jobs/{job['id']}", headers=alice).json()["status"] == "queued"
    cancelled = http.post(f"/v1/jobs/{job['id']}/cancel", headers=alice)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] and "cancel" not in cancelled.json()["links"]
    assert http.post(f"/v1/jobs/{job['id']}/cancel", headers=alice).json()["status"] == "cancelled"  # idempotent
    assert run_job(job["id"]) is None  # the worker that picks it up drops it
    result = http.get(f"/v1/jobs/{job['id']}/result", headers=alice)
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_cancelled"


def test_a_finished_job_cannot_be_cancelled(http, alice, video_bytes, run_job):
    job = http.post("/v1/jobs", json={"source": upload(http, alice, video_bytes)}, headers=alice).json()
    run_job(job["id"])
    refused = http.post(f"/v1/jobs/{job['id']}/cancel", headers=alice)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_finished"
    assert http.get(f"/v1/jobs/{job['id']}", headers=alice).json()["status"] == "succeeded"


@pytest.mark.parametrize("filename", ["Été 2024 — final cut.mp4", "spaces in name.mp4", "日本語.mov"])
def test_unicode_and_spaces_in_file_names_round_trip(http, alice, video_bytes, run_job, filename):
    key = upload(http, alice, video_bytes, filename=filename)
    assert key.endswith(filename)
    job = http.post("/v1/jobs", json={"source": key}, headers=alice).json()
    run_job(job["id"])
    status = http.get(f"/v1/jobs/{job['id']}", headers=alice).json()
    assert status["status"] == "succeeded" and status["source"].endswith(filename)


def test_openapi_and_unknown_routes(http):
    page = http.get("/", follow_redirects=True)
    assert page.status_code == 200 and "<title>Shot detection" in page.text and page.url.path == "/ui/"
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        served = http.get(f"/ui/{asset}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
    assert http.get("/ui/../deps.py").status_code == 404 and http.get("/ui/secrets.py").status_code == 404
    spec = http.get("/openapi.json").json()
    assert {"/v1/uploads", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"} <= set(spec["paths"])
    missing = http.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
