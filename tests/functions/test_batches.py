"""POST /v1/batches and friends over real Redis and moto S3, no workers: checks, lazy feeding, counts, cancel.

The items' runs, results, retry and a worker killed mid-batch are in tests/workers/test_batches.py.
"""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from functions.app import create_app
from functions.deps import Services
from videoapi.domain import redis_keys
from videoapi.domain.batches import CHUNK_ROWS, SUBMIT_FEED
from videoapi.settings import Settings


@pytest.fixture(scope="module")
def batch_settings(redis_url, s3_endpoint) -> Settings:
    from videoapi.adapters.storage import Storage

    base = redis_url.rsplit("/", 1)[0]
    settings = Settings(
        redis_url=f"{base}/7", s3_endpoint_url=s3_endpoint, bucket="videoapi-batches", batch_max_items=200_000
    )
    Storage.from_settings(settings).ensure_bucket()
    return settings


@pytest.fixture(scope="module")
def services(batch_settings) -> Services:
    services = Services.from_settings(batch_settings)
    services.jobs.store.redis.flushdb()
    return services


@pytest.fixture(scope="module")
def http(batch_settings, services) -> TestClient:
    return TestClient(create_app(batch_settings, services=services))


class Client:
    def __init__(self, services: Services, http: TestClient, max_active_jobs: int | None = None):
        self.id = f"batcher-{uuid.uuid4().hex[:6]}"
        key = services.keys.create(self.id)
        services.keys.set_limits(key, rate_limit=0, max_active_jobs=max_active_jobs)
        self.auth, self.http, self.services = {"X-API-Key": key}, http, services

    def upload(self, name: str, data: bytes = b"not a video") -> str:
        key = f"uploads/{self.id}/{uuid.uuid4().hex}/{name}"
        self.services.jobs.storage.put_bytes(key, data, "video/mp4")
        return key

    def submit(self, body: dict, status: int = 202, **headers: str) -> dict:
        response = self.http.post("/v1/batches", json=body, headers={**self.auth, **headers})
        assert response.status_code == status, response.text
        return response.json()

    def get(self, path: str, status: int = 200):
        response = self.http.get(path, headers=self.auth)
        assert response.status_code == status, response.text
        return response


@pytest.fixture
def client(services, http) -> Client:
    return Client(services, http)


def items_table(client: Client, batch_id: str) -> list[dict]:
    text = client.get(f"/v1/batches/{batch_id}/results?items=true&format=jsonl").text
    return sorted((json.loads(line) for line in text.splitlines()), key=lambda row: row["row"])


def test_a_list_with_bad_rows_runs_the_rest_and_fails_each_bad_row_with_its_code(client, services):
    other = Client(services, client.http)
    good = client.upload("a.mp4")
    batch = client.submit(
        {
            "sources": [
                good,
                {"source": good, "id": "mine", "threshold": 0.3},
                other.upload("theirs.mp4"),  # another client's upload
                "http://example.com/plain.mp4",  # a refused URL: https only
                "s3://somebody-elses-bucket/a.mp4",
                {"source": good, "threshold": 2},
            ]
        }
    )
    assert batch["items"] == 6 and batch["status"] == "running"
    assert batch["counts"]["failed"] == 4 and batch["counts"]["queued"] == 2
    rows = items_table(client, batch["id"])
    failed = {row["row"]: row["error_code"] for row in rows if row["status"] == "failed"}
    assert failed == {3: "source_not_found", 4: "source_not_allowed", 5: "bucket_not_allowed", 6: "invalid_options"}
    jobs = services.jobs.store.list_for(client.id, 10)
    assert sorted(job.tag for job in jobs) == ["1", "mine"]  # the items are the client's jobs, tagged by item id
    assert {job.extra["priority"] for job in jobs} == {"batch"}
    assert {job.threshold for job in jobs} == {0.3, services.jobs.settings.threshold}


def test_manifests_jsonl_and_csv_with_a_bad_row(client):
    good = client.upload("a.mp4")
    jsonl = "\n".join([json.dumps({"source": good, "id": "x"}), "{not json", "", json.dumps({"id": "no source"})])
    batch = client.submit({"sources": {"manifest": client.upload("list.jsonl", jsonl.encode())}})
    assert batch["items"] == 3 and batch["counts"]["failed"] == 2
    assert [(r["row"], r["error_code"]) for r in items_table(client, batch["id"])] == [
        (2, "invalid_row"),
        (3, "missing_source"),
    ]
    csv_text = f"source,id,threshold\n{good},one,0.4\n{good},two,abc\n"
    manifest = client.upload("list.csv", csv_text.encode())
    batch = client.submit({"sources": {"manifest": f"s3://videoapi-batches/{manifest}"}})
    assert batch["items"] == 2
    assert [(r["row"], r["item_id"], r["error_code"]) for r in items_table(client, batch["id"])] == [
        (2, "two", "invalid_options")
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"sources": {"manifest": "MISSING"}}, 404, "manifest_not_found", "sources.manifest"),
        ({"sources": {"manifest": "BINARY"}}, 422, "invalid_manifest", "sources.manifest"),
        ({"sources": {"prefix": "EMPTY"}}, 422, "empty_batch", "sources"),
        ({"sources": {"prefix": "uploads/someone-else/"}}, 404, "source_not_found", "sources.prefix"),
        ({"sources": {"prefix": "https://example.com/"}}, 422, "source_not_allowed", "sources.prefix"),
        ({"sources": []}, 422, "empty_batch", "sources"),
        ({"sources": {"prefix": "x", "manifest": "y"}}, 422, "invalid_request", "sources"),
        ({"sources": ["a"], "options": {"threshold": 5}}, 422, "invalid_request", "options.threshold"),
    ],
)
def test_bad_batches_are_refused_with_a_code_and_a_field(client, body, status, code, field):
    text = json.dumps(body)
    text = text.replace("MISSING", f"uploads/{client.id}/nothing.jsonl")
    text = text.replace("BINARY", client.upload("list.bin", bytes(range(256)) * 4))
    text = text.replace("EMPTY", f"uploads/{client.id}/empty/")
    error = client.submit(json.loads(text), status=status)["error"]
    assert error["code"] == code and error.get("field", "").startswith(field), error


def test_a_batch_over_the_item_limit_is_413_and_leaves_nothing(client, batch_settings):
    small = batch_settings.model_copy(update={"batch_max_items": 5})
    limited = Services.from_settings(small)
    http = TestClient(create_app(small, services=limited))
    rows = "\n".join(json.dumps({"source": f"uploads/{client.id}/v{i}.mp4"}) for i in range(6))
    body = {"sources": {"manifest": client.upload("big.jsonl", rows.encode())}}
    response = http.post("/v1/batches", json=body, headers=client.auth)
    assert response.status_code == 413 and response.json()["error"]["code"] == "batch_too_large"
    assert http.post("/v1/batches", json={"sources": [client.upload("a.mp4")] * 5}, headers=client.auth).is_success
    assert len(client.get("/v1/batches").json()["batches"]) == 1


def test_a_100000_row_manifest_is_accepted_without_a_write_per_row(client, services):
    rows = "\n".join(json.dumps({"source": f"uploads/{client.id}/v{i}.mp4", "id": f"v{i}"}) for i in range(100_000))
    manifest = client.upload("big.jsonl", rows.encode())
    redis = services.jobs.store.redis
    before = int(redis.info("stats")["total_commands_processed"])
    batch = client.submit({"sources": {"manifest": manifest}})
    commands = int(redis.info("stats")["total_commands_processed"]) - before
    assert batch["items"] == 100_000
    assert commands < 40 * SUBMIT_FEED + 100, commands  # the first few items and the record, not a row each
    assert redis.zcard(redis_keys.client_jobs(client.id)) == SUBMIT_FEED
    assert batch["counts"]["pending"] + batch["done"] + batch["counts"]["queued"] == 100_000


def test_items_past_the_first_rows_chunk_are_fed_from_the_second(client, services):
    rows = "\n".join(json.dumps({"source": f"uploads/{client.id}/v{i}.mp4", "id": f"v{i}"}) for i in range(10_005))
    batch = client.submit({"sources": {"manifest": client.upload("two-chunks.jsonl", rows.encode())}})
    redis, batches = services.jobs.store.redis, services.batches
    redis.hset(redis_keys.batch(batch["id"]), "fed", CHUNK_ROWS - 2)  # as if the first chunk's rows had all run
    redis.delete(redis_keys.active_jobs(client.id))  # and their jobs ended
    assert batches.feed(batch["id"], most=4) == 4
    tags = [job.tag for job in services.jobs.store.list_for(client.id, 100)]
    assert len(tags) == SUBMIT_FEED + 4  # both sides of the chunk boundary, each row its own:
    assert {"v9998", "v9999", "v10000", "v10001"} <= set(tags)


def test_items_fill_the_batch_share_of_the_quota_and_interactive_jobs_keep_room(services, http):
    client = Client(services, http, max_active_jobs=4)
    good = client.upload("a.mp4", b"x")
    batch = client.submit({"sources": [good] * 10})  # a batch over the quota: never a 429
    assert batch["counts"] == {"pending": 8, "queued": 2, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    for _ in range(2):  # the client's other half of its quota
        response = http.post("/v1/jobs", json={"source": good}, headers=client.auth)
        assert response.status_code == 202, response.text
    assert client.get(f"/v1/batches/{batch['id']}").json()["counts"]["queued"] == 2


def test_idempotency_key_gives_the_same_batch_and_refuses_another_body(client):
    body = {"sources": [client.upload("a.mp4")], "tag": "t"}
    first = client.submit(body, **{"Idempotency-Key": "k1"})
    again = client.submit(body, status=200, **{"Idempotency-Key": "k1"})
    assert again["id"] == first["id"]
    error = client.submit({**body, "tag": "other"}, status=409, **{"Idempotency-Key": "k1"})["error"]
    assert error["code"] == "idempotency_key_reused"


def test_cancel_stops_feeding_and_cancels_the_queued_items(client, services):
    batch = client.submit({"sources": [client.upload("a.mp4")] * 40})
    response = client.http.post(f"/v1/batches/{batch['id']}/cancel", headers=client.auth)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["counts"]["cancelled"] == 40 and cancelled["counts"]["pending"] == 0
    assert services.jobs.quotas.active(client.id) == 0
    statuses = {job.status.value for job in services.jobs.store.list_for(client.id, 100)}
    assert statuses == {"cancelled"}
    retry = client.http.post(f"/v1/batches/{batch['id']}/retry", headers=client.auth)
    assert retry.status_code == 409 and retry.json()["error"]["code"] == "batch_cancelled"


def test_another_clients_batch_is_not_found_and_the_list_is_the_clients(client, services):
    batch = client.submit({"sources": [client.upload("a.mp4")]})
    other = Client(services, client.http)
    assert other.get(f"/v1/batches/{batch['id']}", status=404).json()["error"]["code"] == "batch_not_found"
    assert other.get(f"/v1/batches/{batch['id']}/results", status=404).status_code == 404
    assert [b["id"] for b in client.get("/v1/batches").json()["batches"]] == [batch["id"]]
    assert other.get("/v1/batches").json()["batches"] == []
