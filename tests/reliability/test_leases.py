"""Leases on a real Redis, and a whole worker SIGKILLed mid-job on the real stack with a second worker up."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from local.synthetic import write_video
from local.worker_process import WorkerProcess
from videoapi.adapters.queue import NEXT_JOB_TASK
from videoapi.adapters.storage import Storage
from videoapi.domain import redis_keys
from videoapi.domain.jobs import JobStatus, JobStore
from videoapi.domain.leases import WORKER_LOST, LeaseBook, LeasedTask
from videoapi.pipeline.shots import score_transitions
from videoapi.pipeline.windows import window_count
from workers.celery_app import create_app as create_celery

pytestmark = [pytest.mark.reliability]


@pytest.fixture
def store(redis_url) -> JobStore:
    base = redis_url.rsplit("/", 1)[0]
    store = JobStore.from_url(f"{base}/9")
    store.redis.flushdb()
    return store


def leased_task(store: JobStore, task_id: str = "task-1") -> LeasedTask:
    job = store.create(bucket="b", key="k.mp4", threshold=0.5)
    store.start(job.id, 100)
    return LeasedTask(task_id, "videoapi.detect_shots", job.id, [job.id], {"group_id": None})


def test_lapsed_lease_is_requeued_once_and_a_renewed_one_is_not(store):
    book = LeaseBook(store, lease_s=0.5)
    lost, alive = leased_task(store, "lost"), leased_task(store, "alive")
    assert book.acquire(lost, "host-a", 101) and book.acquire(alive, "host-b", 102)
    time.sleep(0.7)
    assert book.renew("alive")
    sent = []
    assert [t.task_id for t in book.reap(sent.append)] == ["lost"]
    assert sent == [lost]  # same name, arguments and options: it runs again as the same task
    assert book.reap(sent.append) == []  # re-queued once, not at every pass
    assert store.get(lost.job_id).extra["attempts"] == "1"


def test_a_re_send_the_broker_refuses_is_tried_again_at_the_next_pass(store):
    book = LeaseBook(store, lease_s=0.1)
    task = leased_task(store)
    book.acquire(task, "h", 1)
    time.sleep(0.2)

    def refuse(_: LeasedTask) -> None:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        book.reap(refuse)
    sent = []
    assert book.reap(sent.append) == [task]  # not lost: sent at the next pass
    assert store.redis.hget(redis_keys.lease(task.task_id), "losses") == "1"  # one lost worker, counted once


def test_reaper_lock_lets_one_reaper_at_a_time(store):
    book = LeaseBook(store, lease_s=0.1)
    task = leased_task(store)
    book.acquire(task, "h", 1)
    time.sleep(0.2)
    lock = store.redis.lock("leases:reaper", timeout=5)
    assert lock.acquire(blocking=False)
    assert book.reap(lambda t: None) == []  # another reaper holds the lock
    lock.release()
    assert len(book.reap(lambda t: None)) == 1


def test_released_lease_is_never_reaped(store):
    book = LeaseBook(store, lease_s=0.1)
    task = leased_task(store)
    book.acquire(task, "h", 1)
    book.release(task.task_id)
    time.sleep(0.2)
    assert book.reap(lambda t: pytest.fail("a finished task was re-queued")) == []


def test_task_whose_worker_dies_three_times_fails_as_worker_lost(store):
    book = LeaseBook(store, lease_s=0.1, max_worker_losses=3)
    task = leased_task(store)
    sent = []
    assert book.acquire(task, "h", 1)
    time.sleep(0.2)
    book.reap(sent.append)  # loss 1, reaped
    assert book.acquire(task, "h", 2)  # the re-queued copy starts; its worker dies without releasing
    assert book.acquire(task, "h", 3)  # Celery redelivers it (pool process lost): loss 2
    time.sleep(0.2)
    book.reap(sent.append)  # loss 3: poison
    assert len(sent) == 1
    job = store.get(task.job_id)
    assert job.status == JobStatus.failed and job.error_code == WORKER_LOST
    assert job.extra["attempts"] == "3"


CHECKPOINT_WINDOWS = 4  # a checkpoint every 200 frames


def _lease_settings(stack_settings, db: int, **extra):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    # short lease intervals (allowed by the issue); the visibility timeout stays at its production default
    return stack_settings.model_copy(
        update={
            "redis_url": f"{base}/{db}",
            "lease_s": 10.0,
            "lease_renew_s": 2.0,
            "reaper_interval_s": 2.0,
            "segment_frames": 27_000,
            "checkpoint_windows": CHECKPOINT_WINDOWS,
            **extra,
        }
    )


def _windows_inferred(triton, model: str) -> int:
    """Triton's own count of windows it ran for the model (its statistics API): what was really inferred."""
    with urllib.request.urlopen(f"http://{triton.http_url}/v2/models/{model}/stats", timeout=5) as response:
        return sum(int(m["inference_count"]) for m in json.load(response)["model_stats"])


def _long_job(settings, tmp_path, name: str):
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / f"{name}.mp4"
    cuts = write_video(video, [300, 250, 400, 350, 300], fps=25, width=160, height=90, seed=5)  # 1,600 frames
    key = f"incoming/leases/{name}.mp4"
    storage.put_bytes(key, video.read_bytes(), "video/mp4")
    return store, storage, store.create(bucket=storage.bucket, key=key, threshold=0.5), cuts


def _wait_running(store, job_id: str, frames: int):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = store.get(job_id)
        if state.status == JobStatus.running and state.frames_done >= frames:
            return state
        time.sleep(0.1)
    pytest.fail(f"the job did not reach frame {frames}: {store.get(job_id)}")


def _check_shots(storage, state, cuts) -> None:
    assert state.status == JobStatus.succeeded, (state.error_code, state.error_message)
    document = storage.get_json(state.result_key)
    found = [(a["end_frame"], b["start_frame"]) for a, b in zip(document["shots"], document["shots"][1:])]
    assert score_transitions(found, [(c - 1, c) for c in cuts]).f1 == 1.0


@pytest.mark.slow
def test_whole_worker_killed_mid_job_recovers_within_60s(stack_settings, triton, tmp_path):
    settings = _lease_settings(stack_settings, 8)
    assert settings.visibility_timeout_s == 6 * 3600
    store, storage, job, cuts = _long_job(settings, tmp_path, "killed")
    celery = create_celery(settings)
    windows_before = _windows_inferred(triton, settings.model_name)
    with (
        WorkerProcess(settings, concurrency=1, name="rescuer", log_path=tmp_path / "rescuer.log"),
        WorkerProcess(settings, concurrency=1, name="victim", log_path=tmp_path / "victim.log") as victim,
    ):
        celery.control.cancel_consumer("shots", destination=_worker_named(celery, "rescuer"), reply=True)
        celery.send_task("videoapi.detect_shots", args=[job.id])
        state = _wait_running(store, job.id, 500)
        assert state.extra.get("worker"), "the running job names its worker"
        celery.control.add_consumer("shots", destination=_worker_named(celery, "rescuer"), reply=True)
        victim.kill()  # SIGKILL of the main process and its pool: as when the node is lost
        killed_at = time.monotonic()
        while time.monotonic() < killed_at + 90:
            state = store.get(job.id)
            if state.status.finished:
                break
            time.sleep(0.2)
        recovery_s = time.monotonic() - killed_at
    celery.close()
    recomputed = (_windows_inferred(triton, settings.model_name) - windows_before - window_count(1600)) * 50
    print(f"recovery after the kill: {recovery_s:.1f} s; frames inferred twice: {recomputed}")
    _check_shots(storage, state, cuts)
    assert recovery_s < 60
    assert state.extra["attempts"] == "2"
    assert 0 <= recomputed <= CHECKPOINT_WINDOWS * 50  # the retry resumed from the last checkpoint


@pytest.mark.slow
def test_sigterm_mid_job_requeues_it_at_once_and_it_resumes_on_the_other_worker(stack_settings, triton, tmp_path):
    # a grace period the job cannot finish in; the lease is left at its default (30 s): nothing waits for it
    settings = _lease_settings(stack_settings, 12, lease_s=30.0, shutdown_grace_s=1.0)
    store, storage, job, cuts = _long_job(settings, tmp_path, "terminated")
    celery = create_celery(settings)
    windows_before = _windows_inferred(triton, settings.model_name)
    with (
        WorkerProcess(settings, concurrency=1, name="rescuer", log_path=tmp_path / "rescuer.log"),
        WorkerProcess(settings, concurrency=1, name="victim", log_path=tmp_path / "victim.log") as victim,
    ):
        celery.control.cancel_consumer("shots", destination=_worker_named(celery, "rescuer"), reply=True)
        celery.send_task("videoapi.detect_shots", args=[job.id])
        # early in the job: on a fast CPU the 1,600 frames take about 3 s, and a job that can finish within
        # the grace period rightly finishes instead of yielding
        state = _wait_running(store, job.id, 100)
        victim_pid = json.loads(state.extra["worker"])["pid"]
        victim.terminate()  # SIGTERM to the worker's main process, as Kubernetes sends at scale-in
        termed_at = time.monotonic()
        celery.control.add_consumer("shots", destination=_worker_named(celery, "rescuer"), reply=True)
        assert victim.wait(60) == 0, "the victim worker shuts down once its task has yielded"
        taken_s = None
        while time.monotonic() < termed_at + 120:
            state = store.get(job.id)
            worker = json.loads(state.extra.get("worker") or "{}")
            if taken_s is None and state.extra.get("attempts") == "2" and worker.get("pid") != victim_pid:
                taken_s = time.monotonic() - termed_at
            if state.status.finished:
                break
            time.sleep(0.2)
    celery.close()
    recomputed = (_windows_inferred(triton, settings.model_name) - windows_before - window_count(1600)) * 50
    _check_shots(storage, state, cuts)
    assert state.extra["attempts"] == "2" and taken_s is not None, "the victim yielded the job to the other worker"
    print(f"taken by the other worker {taken_s:.1f} s after SIGTERM; frames inferred twice: {recomputed}")
    assert taken_s < settings.lease_s  # re-queued by the task itself, not by the reaper
    # it checkpointed where it stopped: at most the one padded window past the cut is thrown away
    assert 0 <= recomputed <= 50


@pytest.mark.slow
def test_a_video_that_kills_its_worker_every_time_fails_as_worker_lost_and_the_next_job_runs(stack_settings, tmp_path):
    settings = _lease_settings(stack_settings, 11)
    store, storage = JobStore.from_url(settings.redis_url), Storage.from_settings(settings)
    video = tmp_path / "short.mp4"
    cuts = write_video(video, [60, 90], fps=25, width=160, height=90, seed=3)
    for key in ("incoming/poison/deadly.mp4", "incoming/leases/fine.mp4"):
        storage.put_bytes(key, video.read_bytes(), "video/mp4")
    poison = store.create(bucket=storage.bucket, key="incoming/poison/deadly.mp4", threshold=0.5)
    fine = store.create(bucket=storage.bucket, key="incoming/leases/fine.mp4", threshold=0.5)
    celery = create_celery(settings)
    # the tests' hook: the pool process running a job whose key names the marker SIGKILLs itself
    crash = {"VIDEOAPI_TEST_CRASH_MARKER": "/poison/"}
    with WorkerProcess(settings, concurrency=1, name="poisoned", log_path=tmp_path / "w.log", extra_env=crash) as w:
        celery.send_task("videoapi.detect_shots", args=[poison.id])
        celery.send_task("videoapi.detect_shots", args=[fine.id])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not all(store.get(j.id).status.finished for j in (poison, fine)):
            time.sleep(0.2)
        assert w.alive  # Celery replaced each killed pool process; the worker itself went on
    celery.close()
    dead = store.get(poison.id)
    assert dead.status == JobStatus.failed and dead.error_code == WORKER_LOST, (dead.status, dead.error_code)
    assert dead.extra["attempts"] == "3"
    assert (tmp_path / "w.log").read_text().count("WorkerLostError") >= 3  # three real process deaths
    _check_shots(storage, store.get(fine.id), cuts)


def _worker_named(celery, name: str) -> list[str]:
    """The full name of the live worker called `name`, as a destination: waited for, since an empty
    destination list would reach every worker."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = [n for r in celery.control.ping(timeout=1.0) or [] for n in r if name in n]
        if names:
            return names
    raise AssertionError(f"worker {name} did not answer a ping")


def _active(celery) -> int:
    """Tasks the live workers are running or hold."""
    inspect = celery.control.inspect(timeout=1.0)
    return sum(len(tasks) for view in (inspect.active(), inspect.reserved()) for tasks in (view or {}).values())


@pytest.mark.slow
def test_a_fair_share_token_whose_worker_is_killed_runs_the_same_job_again(stack_settings, tmp_path):
    """The lease reaper re-sends a token under its own id: it runs the job it had popped, and no other is lost."""
    from functions.deps import Services
    from videoapi.domain.submission import SubmitRequest

    base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(
        update={
            "redis_url": f"{base}/11",
            "lease_s": 10.0,
            "lease_renew_s": 2.0,
            "reaper_interval_s": 2.0,
            "segment_frames": 27_000,
            "client_rate_limit": 0,
        }
    )
    services = Services.from_settings(settings)
    services.jobs.store.redis.flushdb()
    store, storage = services.jobs.store, services.jobs.storage
    long_video, tiny = tmp_path / "long.mp4", tmp_path / "tiny.mp4"
    write_video(long_video, [300, 250, 400, 350, 300], fps=25, seed=5)
    write_video(tiny, [25, 25], fps=25, width=96, height=54)
    storage.put_bytes("uploads/big/long.mp4", long_video.read_bytes(), "video/mp4")
    storage.put_bytes("uploads/small/tiny.mp4", tiny.read_bytes(), "video/mp4")
    celery = create_celery(settings)
    with (
        WorkerProcess(settings, concurrency=1, name="rescuer", log_path=tmp_path / "rescuer.log"),
        WorkerProcess(settings, concurrency=1, name="victim", log_path=tmp_path / "victim.log") as victim,
    ):
        celery.control.cancel_consumer("shots", destination=_worker_named(celery, "rescuer"), reply=True)
        long_job, _ = services.jobs.submit("big", SubmitRequest(source="uploads/big/long.mp4"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = store.get(long_job.id)
            if state.status == JobStatus.running and state.frames_done >= 200:
                break
            time.sleep(0.1)
        assert state.status == JobStatus.running
        small = [services.jobs.submit("small", SubmitRequest(source="uploads/small/tiny.mp4"))[0] for _ in range(3)]
        celery.control.add_consumer("shots", destination=_worker_named(celery, "rescuer"), reply=True)
        victim.kill()
        deadline = time.monotonic() + 120
        ids = [long_job.id, *(job.id for job in small)]
        while time.monotonic() < deadline and not all(store.get(i).status.finished for i in ids):
            time.sleep(0.2)
        # the long job's token once more, as a reaper would send it had its lease lapsed on the rescuer too:
        # its job is over, so it runs nothing and counts no attempt
        token = next(
            key.removeprefix(redis_keys.fair_claim(""))
            for key in store.redis.scan_iter(redis_keys.fair_claim("*"))
            if store.redis.get(key) == long_job.id
        )
        celery.send_task(NEXT_JOB_TASK, task_id=token, queue="shots")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (store.redis.llen("shots") or _active(celery)):
            time.sleep(0.2)  # every token consumed
        queued = store.redis.llen("shots")
    celery.close()
    jobs = {i: store.get(i) for i in ids}
    logs = "".join(  # the tokens' story, for a failure's message
        line
        for name in ("victim", "rescuer")
        for line in (tmp_path / f"{name}.log").read_text().splitlines(keepends=True)
        if any(word in line for word in ("received", "sent again", "lapsed", "finished already"))
    )
    assert all(job.status == JobStatus.succeeded for job in jobs.values()), [j.error_code for j in jobs.values()]
    assert jobs[long_job.id].extra["attempts"] == "2", logs  # the same job again, on the rescuer
    assert [jobs[job.id].extra["attempts"] for job in small] == ["1", "1", "1"], logs  # each run once, none lost
    assert queued == 0, logs
    assert "finished already" in (tmp_path / "rescuer.log").read_text()  # the copy ran and did nothing
    assert services.jobs.fair.queued("big") == 0 and services.jobs.fair.queued("small") == 0


def test_progress_on_a_record_redis_lost_makes_no_half_record_and_stops_the_task(store):
    # a new, empty Redis under a running task: its progress must not make a record of a count alone
    job = store.create(bucket="b", key="k.mp4", threshold=0.5)
    store.start(job.id, 100)
    assert store.set_progress(job.id, 10) == JobStatus.running
    store.redis.flushdb()
    assert store.set_progress(job.id, 20) == JobStatus.cancelled
    assert store.add_progress(job.id, 5) == JobStatus.cancelled
    assert not store.redis.exists(redis_keys.job(job.id))
