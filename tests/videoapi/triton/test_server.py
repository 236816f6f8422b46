"""The real tritonserver from nvidia-pytriton: starts, serves over HTTP and gRPC, stops, fails clearly."""

import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from local.netutil import port_is_open
from local.triton_server import TritonServer, TritonStartError


def test_serves_the_model_over_http_and_grpc(triton):
    frames = np.random.default_rng(1).integers(0, 256, (2, 100, 27, 48, 3), dtype=np.uint8)
    results = []
    for module, url in ((grpcclient, triton.grpc_url), (httpclient, triton.http_url)):
        client = module.InferenceServerClient(url)
        assert client.is_server_live() and client.is_model_ready("transnetv2")
        inp = module.InferInput("frames", list(frames.shape), "UINT8")
        inp.set_data_from_numpy(frames)
        result = client.infer("transnetv2", [inp])
        results.append((result.as_numpy("single_frame"), result.as_numpy("many_hot")))
        client.close()
    (g_single, g_many), (h_single, h_many) = results
    assert g_single.shape == (2, 100, 1) and g_many.shape == (2, 100, 1)
    assert np.array_equal(g_single, h_single) and np.array_equal(g_many, h_many)
    assert ((0 < g_single) & (g_single < 1)).all()


def test_stop_leaves_no_process_and_frees_the_ports(model_repository):
    server = TritonServer(model_repository).start()
    pid, port = server._process.pid, server.grpc_port
    server.stop()
    assert not port_is_open("127.0.0.1", port)
    with pytest.raises(ProcessLookupError):
        import os

        os.killpg(pid, 0)  # the whole process group (server and backend stubs) is gone


def _copy_without_model_files(model_repository: Path, target: Path) -> None:
    """The repository's model folder with no ONNX file and no INT8 builds (which `auto` serves without AMX)."""
    no_model = shutil.ignore_patterns("*.onnx", "model.int8*")
    shutil.copytree(model_repository / "transnetv2", target / "transnetv2", ignore=no_model)


def test_missing_onnx_file_fails_fast_and_names_the_file(model_repository, tmp_path):
    _copy_without_model_files(model_repository, tmp_path)
    started = time.monotonic()
    with pytest.raises(TritonStartError, match=r"ONNX file not found: .*transnetv2/1/model.onnx"):
        TritonServer(tmp_path).start()
    assert time.monotonic() - started < 60


def test_corrupt_onnx_file_fails_fast_with_the_cause(model_repository, tmp_path):
    _copy_without_model_files(model_repository, tmp_path)
    (tmp_path / "transnetv2" / "1" / "model.onnx").write_bytes(b"not a protobuf" * 10)
    with pytest.raises(TritonStartError, match="cannot load ONNX file .*model.onnx"):
        TritonServer(tmp_path).start()


def test_port_in_use_is_refused(model_repository):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(TritonStartError, match=f"port {port} .* already in use"):
            TritonServer(model_repository, grpc_port=port).start()


def test_missing_repository_is_refused(tmp_path):
    with pytest.raises(TritonStartError, match="model repository not found"):
        TritonServer(tmp_path / "nowhere").start()
