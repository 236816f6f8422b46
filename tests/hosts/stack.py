"""The whole service as separate hosts on one bridge: Redis, S3, Triton (behind a link host), the API, two workers.

Each part is started by the same launcher the local stack uses (local/), run inside its host's namespace, with
the production settings but addresses instead of loopback. The test process is the client's host (the bridge's
own address), where it also receives the callbacks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from functions.deps import Services
from local.netutil import port_is_open, wait_healthy
from local.redis_server import RedisServer
from local.synthetic import write_video
from local.triton_server import TritonServer
from local.worker_process import WorkerProcess
from tests.hosts.network import GATEWAY, Host, Network
from videoapi.adapters.queue import QUEUE
from videoapi.adapters.storage import Storage
from videoapi.domain import redis_keys
from videoapi.domain.jobs import JobStatus, JobStore
from videoapi.settings import PROJECT_ROOT, Settings

REDIS_PORT, S3_PORT, TRITON_GRPC, TRITON_HTTP, TRITON_METRICS, API_PORT = 6379, 5000, 8001, 8000, 8002, 8080
SLOW_LINK_MS = 200
# mixed lengths (shots of frames at 25 fps), tiny pictures, each within one model window of 70 frames (20 new
# ones): a burst's cost is its 100 windows, the CPU's inference the bottleneck (CI's time: keep them short)
VIDEOS = ([8], [6, 6], [10, 8], [5, 5, 5, 5])
TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
FIGURES_ENV = "VIDEOAPI_FAULT_FIGURES"  # a file each fault test appends its figures to, a JSON line each


class CallbackSink:
    """An HTTP server on the client's host counting the callbacks each job received."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.events: dict[str, list[str]] = {}
        lock, received, events = threading.Lock(), self.received, self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with lock:
                    received[body["job"]["id"]] += 1
                    events.setdefault(body["job"]["id"], []).append(body["event"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((GATEWAY, 0), Handler)
        self.url = f"http://{GATEWAY}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Burst:
    """Jobs submitted together, and when each was first seen finished."""

    ids: list[str]
    submitted_at: str = field(default_factory=lambda: time.strftime("%H:%M:%S"))  # the worker logs' clock
    finished_at: dict[str, float] = field(default_factory=dict)
    status: dict[str, JobStatus] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class HostStack:
    net: Network
    logs: Path
    model_repository: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    redis: RedisServer | None = None
    triton: TritonServer | None = None
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    api_url: str = ""
    api_key: str = ""
    sources: list[str] = field(default_factory=list)
    sink: CallbackSink | None = None
    _link: Any = None

    # starting -----------------------------------------------------------------------------------
    def start(self) -> HostStack:
        for name in ("redis", "s3", "triton", "link", "api", "w1", "w2"):
            self.hosts[name] = self.net.add(name)
        h = self.hosts
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "hosts")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "hosts")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        self.start_redis(keep_data=False)
        self.net.spawn(
            h["s3"],
            [sys.executable, "-m", "moto.server", "-H", h["s3"].address, "-p", str(S3_PORT)],
            env=dict(os.environ),
            log=self.logs / "s3.log",
        )
        self.triton = TritonServer(
            self.model_repository,
            http_port=TRITON_HTTP,
            grpc_port=TRITON_GRPC,
            metrics_port=TRITON_METRICS,
            host=h["triton"].address,
            command_prefix=h["triton"].run,
        ).launch()
        self._link = self.net.spawn(
            h["link"],
            [
                sys.executable,
                str(Path(__file__).with_name("delay_proxy.py")),
                f"{h['link'].address}:{TRITON_GRPC}",
                f"{h['triton'].address}:{TRITON_GRPC}",
                str(SLOW_LINK_MS),
            ],
            log=self.logs / "link.log",
        )
        self.sink = CallbackSink()
        self.settings = Settings(
            redis_url=f"redis://{h['redis'].address}:{REDIS_PORT}/0",
            s3_endpoint_url=f"http://{h['s3'].address}:{S3_PORT}",
            sns_endpoint_url=f"http://{h['s3'].address}:{S3_PORT}",
            bucket="videoapi-hosts",
            triton_url=f"{h['link'].address}:{TRITON_GRPC}",  # through the link host (a load balancer's place)
            triton_protocol="grpc",
            window=70,
            model_repository=self.model_repository,
            allow_private_callbacks=True,  # the callback sink is on the private bridge
            client_rate_limit=0,  # a burst of 100 submissions in a second is the point here, not a refusal
            callback_secret="hosts-callback-secret",
        )
        deadline = time.monotonic() + 120  # moto's imports take a while on a busy machine
        while not port_is_open(h["s3"].address, S3_PORT):
            assert time.monotonic() < deadline, "moto did not listen on its host"
            time.sleep(0.1)
        Storage.from_settings(self.settings).ensure_bucket()
        self.triton.wait_ready()
        for name in ("w1", "w2"):
            self.start_worker(name)
        self.start_api()
        self.api_key = Services.from_settings(self.settings).keys.create("hosts")
        self.upload_sources()
        return self

    def start_redis(self, *, keep_data: bool) -> None:
        """Redis on its host; keep_data=False starts it empty (its data directory removed: a new machine)."""
        import shutil

        data = self.logs / "redis-data"
        if not keep_data:
            shutil.rmtree(data, ignore_errors=True)
        self.redis = RedisServer(
            port=REDIS_PORT, host=self.hosts["redis"].address, data_dir=data, command_prefix=self.hosts["redis"].run
        ).start()

    def start_worker(self, name: str) -> WorkerProcess:
        worker = WorkerProcess(
            self.settings,
            concurrency=1,
            name=name,
            log_path=self.logs / f"{name}.log",
            command_prefix=self.hosts[name].run,
        ).start(timeout_s=90)
        self.workers[name] = worker
        return worker

    def start_api(self) -> None:
        api = self.hosts["api"]
        process = self.net.spawn(
            api,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "functions.asgi:app",
                "--host",
                api.address,
                "--port",
                str(API_PORT),
                "--no-access-log",
            ],
            env={**os.environ, **self.settings.to_env(), "PYTHONPATH": str(PROJECT_ROOT)},
            log=self.logs / "api.log",
        )
        self.api_url = f"http://{api.address}:{API_PORT}"
        problem = wait_healthy(f"{self.api_url}/v1/health", process)
        assert problem is None, f"API {problem} (log: {self.logs / 'api.log'})"

    def upload_sources(self) -> None:
        self.sources = []
        for i, lengths in enumerate(VIDEOS):
            video = self.logs / f"source{i}.mp4"
            if not video.exists():
                write_video(video, lengths, fps=25, seed=i, width=64, height=36)
            uploaded = httpx.put(
                f"{self.api_url}/v1/uploads/direct",
                params={"filename": video.name},
                content=video.read_bytes(),
                headers={"X-API-Key": self.api_key, "Content-Type": "video/mp4"},
                timeout=30,
            )
            assert uploaded.status_code in (200, 201), uploaded.text
            self.sources.append(uploaded.json()["key"])

    def slow_link(self, on: bool) -> None:
        """Delay Triton's answers to the workers by SLOW_LINK_MS (on) or not (off)."""
        os.kill(self._link.pid, signal.SIGUSR1 if on else signal.SIGUSR2)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop(timeout_s=10)
        if self.triton is not None:
            self.triton.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.sink is not None:
            self.sink.close()

    # jobs ---------------------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def store(self) -> JobStore:
        return JobStore.from_url(self.settings.redis_url)

    def submit(self, count: int = 100) -> Burst:
        """`count` jobs over the sources in turn, each with a callback; all accepted (202) or the test fails."""
        ids = []
        with httpx.Client(base_url=self.api_url, headers=self.headers, timeout=15) as client:
            for n in range(count):
                response = client.post(
                    "/v1/jobs",
                    json={"source": self.sources[n % len(self.sources)], "callback_url": self.sink_url},
                )
                assert response.status_code in (200, 201, 202), response.text
                ids.append(response.json()["id"])
        return Burst(ids)

    @property
    def sink_url(self) -> str:
        assert self.sink is not None
        return self.sink.url

    def wait(self, burst: Burst, timeout_s: float) -> Burst:
        """Poll the job records (from the client's host) until every job is over or the time is out."""
        store = self.store()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for job_id in burst.ids:
                if job_id in burst.finished_at:
                    continue
                try:
                    job = store.get(job_id)
                except Exception as exc:  # the job record is gone (an empty Redis): reported by the test
                    burst.errors[job_id] = type(exc).__name__
                    continue
                if job.status in TERMINAL:
                    burst.finished_at[job_id] = time.monotonic()
                    burst.status[job_id] = job.status
                    if job.error_code:
                        burst.errors[job_id] = job.error_code
            if len(burst.finished_at) == len(burst.ids):
                break
            time.sleep(0.5)
        return burst

    def callbacks_settle(self, burst: Burst, timeout_s: float = 30.0) -> None:
        """Wait until each finished job's callback arrived, then a little longer for any duplicate."""
        assert self.sink is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(self.sink.received[j] == 0 for j in burst.finished_at):
            time.sleep(0.2)
        time.sleep(3)

    def diagnose(self, burst: Burst, lines: int = 25) -> str:
        """What a failed fault test prints: the jobs not over, the queue's length, each worker log's last lines."""
        unfinished = [j for j in burst.ids if j not in burst.finished_at]
        try:
            client = self.store().redis
            fair = {key: client.llen(key) for key in client.scan_iter(match=f"{redis_keys.FAIR_QUEUE_PREFIX}*")}
            queued = f"{client.llen(QUEUE)} task(s) in the Celery queue, fair queues {fair}"
        except Exception as exc:  # Redis gone: said, not raised over the failure being reported
            queued = type(exc).__name__
        callbacks = "-"
        if self.sink is not None:
            counts = self.sink.received
            callbacks = str({j: counts[j] for j in burst.finished_at if counts[j] != 1})[:300]
        parts = [
            f"at {time.strftime('%H:%M:%S')} (the worker logs' clock): {len(unfinished)} not over (first: "
            f"{unfinished[:3]}); {queued}; callbacks not exactly once: {callbacks}",
            f"the burst's ids: first {burst.ids[:2]}, submitted at {burst.submitted_at}",
        ]
        for name, worker in self.workers.items():
            tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} (alive: {worker.alive}) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def report(self, fault: str, burst: Burst, healed_at: float, affected: list[str]) -> dict[str, Any]:
        """The figures a fault test prints: jobs, lost, duplicated callbacks, the affected jobs' recovery."""
        assert self.sink is not None
        lost = [j for j in burst.ids if j not in burst.finished_at]
        duplicated = [j for j in burst.ids if self.sink.received[j] > 1]

        def after_heal(ids: list[str]) -> float:
            return round(max([0.0, *(burst.finished_at[j] - healed_at for j in ids if j in burst.finished_at)]), 1)

        figures = {
            "fault": fault,
            "jobs": len(burst.ids),
            "succeeded": sum(s == JobStatus.succeeded for s in burst.status.values()),
            "failed": {j: burst.errors.get(j, "") for j, s in burst.status.items() if s != JobStatus.succeeded},
            "lost": len(lost),
            "duplicated_callbacks": len(duplicated),
            "affected": len(affected),  # running where the fault struck
            "slowest_affected_after_heal_s": after_heal(affected),
            "burst_drained_after_heal_s": after_heal(burst.ids),  # the queue behind them, at 2 workers' pace
        }
        print(f"\n[network_faults] {json.dumps(figures)}")
        if os.environ.get(FIGURES_ENV):  # `python -m bench network_faults` gathers them into a result file
            with open(os.environ[FIGURES_ENV], "a") as file:
                file.write(json.dumps(figures) + "\n")
        return figures
