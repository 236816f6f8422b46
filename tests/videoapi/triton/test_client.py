"""ShotModelClient against the real server: contract read from Triton, clear errors, no hangs."""

import time

import numpy as np
import pytest

from local.netutil import free_port
from videoapi.adapters.triton import ShotModelClient
from videoapi.errors import InferenceInputError, InferenceUnavailable


@pytest.fixture(params=["grpc", "http"])
def client(request, triton):
    url = triton.grpc_url if request.param == "grpc" else triton.http_url
    with ShotModelClient(url, protocol=request.param, timeout_s=30) as c:
        yield c


def test_reads_the_served_contract(client):
    served = client.served_model()
    assert (served.input_name, served.input_datatype, served.window) == ("frames", "UINT8", None)
    assert (served.single_frame_output, served.many_hot_output) == ("single_frame", "many_hot")
    assert served.max_batch_size == 8 and served.version == "1" and not served.outputs_are_logits


def test_predicts_more_windows_than_one_request_holds(client, reference_frames):
    client.batch_windows = 2
    count = 5
    windows = np.stack([reference_frames[i * 50 : i * 50 + 100] for i in range(count)])
    single, many = client.predict(windows)
    assert single.shape == (count, 100) and many.shape == (count, 100)
    first, _ = client.predict(windows[:1])
    assert np.allclose(first[0], single[0], atol=1e-6)


@pytest.mark.parametrize(
    "shape,dtype",
    [((1, 100, 27, 48), np.uint8), ((1, 100, 48, 27, 3), np.uint8), ((1, 100, 27, 48, 3), np.float32)],
)
def test_wrong_input_is_refused_before_sending(client, shape, dtype):
    with pytest.raises(InferenceInputError, match=r"windows must be uint8 \[n, time, 27, 48, 3\]"):
        client.predict(np.zeros(shape, dtype))


def test_wrong_shape_rejected_by_triton_is_a_permanent_error(triton):
    import tritonclient.grpc as grpcclient

    with ShotModelClient(triton.grpc_url) as c:
        c.served_model()
        inp = grpcclient.InferInput("frames", [1, 100, 27, 48], "UINT8")
        inp.set_data_from_numpy(np.zeros((1, 100, 27, 48), np.uint8))
        with pytest.raises(InferenceInputError, match="inference failed"):
            c._call("inference", c._client.infer, "transnetv2", [inp])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_triton_down_is_unavailable_quickly(protocol):
    started = time.monotonic()
    with ShotModelClient(f"127.0.0.1:{free_port()}", protocol=protocol, timeout_s=5) as c:
        with pytest.raises(InferenceUnavailable, match="Triton at 127.0.0.1"):
            c.predict(np.zeros((1, 100, 27, 48, 3), np.uint8))
    assert time.monotonic() - started < 15


def test_unknown_model_is_unavailable(triton):
    with ShotModelClient(triton.grpc_url, model="nope") as c:
        with pytest.raises(InferenceUnavailable, match="'nope'"):
            c.served_model()


def test_cuda_shared_memory_without_cuda_support_is_a_clear_error(triton):
    """Asked for CUDA shared memory where tritonclient has no CUDA support (no cuda-python, no GPU): a
    triton_unavailable error naming what to install, before any request is sent."""
    with pytest.raises(InferenceUnavailable, match=r"tritonclient\[cuda\]") as raised:
        ShotModelClient(triton.grpc_url, shared_memory="cuda")
    assert raised.value.code == "triton_unavailable"


def test_unknown_shared_memory_kind_is_refused(triton):
    with pytest.raises(ValueError, match="shared_memory must be 'none' or 'cuda'"):
        ShotModelClient(triton.grpc_url, shared_memory="system")  # type: ignore[arg-type]
