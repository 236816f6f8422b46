"""Choosing the decoder: NVDEC where it can run, PyAV otherwise (the GPU path itself is measured on a GPU node,
bench/gpu/nvdec.py, not here)."""

import pytest

from videoapi.errors import DecoderUnavailable
from videoapi.pipeline import decode_nvdec
from videoapi.pipeline.decode_nvdec import resolve_decoder
from videoapi.settings import Settings


def test_this_machine_has_no_nvdec_so_auto_is_pyav():
    # CI and the development machines have no GPU: auto must fall back, never fail
    assert decode_nvdec.nvdec_missing() is not None
    assert resolve_decoder("auto") == "pyav"


def test_auto_takes_nvdec_where_it_can_run(monkeypatch):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    assert resolve_decoder("auto") == "nvdec"
    assert resolve_decoder("nvdec") == "nvdec"


def test_nvdec_asked_for_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: "no CUDA GPU is visible")
    with pytest.raises(DecoderUnavailable, match="VIDEOAPI_DECODER=nvdec, but no CUDA GPU is visible"):
        resolve_decoder("nvdec")


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_cpu_decoders_are_kept(monkeypatch, decoder):
    monkeypatch.setattr(decode_nvdec, "nvdec_missing", lambda: None)
    assert resolve_decoder(decoder) == decoder


def test_setting_defaults_to_auto_and_accepts_nvdec(monkeypatch):
    monkeypatch.delenv("VIDEOAPI_DECODER", raising=False)
    assert Settings().decoder == "auto"
    monkeypatch.setenv("VIDEOAPI_DECODER", "nvdec")
    assert Settings().decoder == "nvdec"


def test_nv12_to_model_converts_bt601_limited_range():
    # the GPU path's conversion, run on the CPU: flat surfaces of known colours come out as those colours
    torch = pytest.importorskip("torch")
    from videoapi.pipeline.decode_nvdec import nv12_to_model

    colours = {(235, 128, 128): (255, 255, 255), (16, 128, 128): (0, 0, 0), (81, 90, 240): (255, 0, 0)}
    y = torch.tensor([c[0] for c in colours], dtype=torch.uint8)[:, None, None].expand(-1, 90, 160)
    uv = torch.tensor([c[1:] for c in colours], dtype=torch.uint8)[:, None, None, :].expand(-1, 45, 80, 2)
    rgb = nv12_to_model(y.contiguous(), uv.contiguous()).numpy()
    assert rgb.shape == (3, 27, 48, 3) and rgb.dtype.name == "uint8"
    for got, want in zip(rgb, colours.values(), strict=True):
        assert abs(got.astype(int) - want).max() <= 1
