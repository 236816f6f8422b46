"""The INT8 model (issue 19): built by NNCF on generated windows, loaded by the runtime, chosen by `auto` per CPU.

Real parts throughout: the built ONNX file, NNCF, OpenVINO, Triton's Python backend, generated H.264 videos.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from local.synthetic import write_video
from local.triton_server import TritonServer
from videoapi.adapters.triton import ShotModelClient
from videoapi.errors import ModelNotBuilt
from videoapi.model.quantize import calibration_windows
from videoapi.model.repository import build_model_repository, cpu_variant, int8_files
from videoapi.model.runtime import auto_precision, cpu_flags, int8_adds_in_pairs, int8_model_path, load_model
from videoapi.pipeline.engine import Detector, LocalModel
from videoapi.settings import Settings

pytest.importorskip("nncf", reason="the int8 extra: pip install -e '.[int8]'")

ONNX = "transnetv2/1/model.onnx"
# Single-frame probabilities of the INT8 model (8 calibration windows; the build's default is 48) against f32's,
# max abs difference measured on this machine (AMX): 0.036 on the cuts video below, 0.018 on test.mp4's windows
# (0.56 at worst on some frame of the accuracy bench's REPORT videos with 48 windows, 21 of 23,791 frames across
# 0.5). Another CPU's INT8 kernels (AVX2, VNNI) round otherwise: room for that.
DRIFT = 0.1


@pytest.fixture(scope="module")
def int8_repository(model_repository, tmp_path_factory) -> Path:
    """The built ONNX file, its INT8 model calibrated on 8 generated windows, served in INT8."""
    repo = tmp_path_factory.mktemp("int8_repo")
    build_model_repository(repo, onnx_file=model_repository / ONNX, cpu_precision="int8", int8_windows=8)
    shutil.copyfile(model_repository / "transnetv2/1/model.py", repo / "transnetv2/1/model.py")
    return repo


@pytest.fixture(scope="module")
def cuts_video(tmp_path_factory) -> tuple[Path, list[int]]:
    path = tmp_path_factory.mktemp("int8_video") / "cuts.mp4"
    return path, write_video(path, [70, 40, 90, 55, 65], fps=25, seed=5)


@pytest.mark.parametrize(
    "cpu,flags,int8_model,expected",
    [
        (
            "Sapphire Rapids: AMX, AVX-512 BF16",
            {"avx2", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"},
            True,
            "bf16",
        ),
        # no AMX: INT8 on VNNI beats AVX-512 BF16 (measured on a real Zen 4: the README at commit 737f761)
        ("AMD Zen 4: AVX-512 BF16, VNNI", {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, True, "int8"),
        ("AMD Zen 4, no INT8 model built", {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, False, "bf16"),
        ("AMD Zen 2: AVX2 only", {"sse4_2", "avx", "avx2", "fma"}, True, "int8"),
        ("AMD Zen 2, no INT8 model built", {"sse4_2", "avx", "avx2", "fma"}, False, "f32"),
        ("Cascade Lake: AVX-512 VNNI, no bf16", {"avx2", "avx512f", "avx512_vnni"}, True, "int8"),
        ("Alder Lake: AVX-VNNI", {"avx2", "avx_vnni"}, True, "int8"),
        ("an old x86: SSE4.2 only", {"sse4_2"}, True, "f32"),
        ("no flags known (ARM)", set(), True, "f32"),
    ],
)
def test_auto_picks_the_precision_from_the_cpu_flags(cpu, flags, int8_model, expected, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert auto_precision(flags, int8_model=int8_model) == expected, cpu


@pytest.mark.parametrize(
    "flags,cap,expected",
    [
        ({"avx2", "fma"}, "", True),  # AMD Zen 2: AVX2's vpmaddubsw
        ({"avx2", "avx512f"}, "", True),  # Skylake-SP: AVX-512 without VNNI adds in pairs too
        ({"avx2", "avx_vnni"}, "", False),  # Alder Lake
        ({"avx2", "avx512_vnni"}, "", False),  # Cascade Lake
        ({"avx2", "avx512_vnni", "amx_int8"}, "", False),
        ({"avx2", "avx512_vnni", "amx_int8"}, "AVX2", True),  # oneDNN capped: AVX2's kernels run
        ({"avx2", "avx512_vnni", "amx_int8"}, "AVX512_CORE", True),
        ({"avx2", "avx512_vnni", "amx_int8"}, "AVX512_CORE_VNNI", False),
        ({"avx2", "avx512_vnni", "amx_int8"}, "ALL", False),
        ({"sse4_2"}, "", False),  # no INT8 kernels to speak of: auto runs f32
    ],
)
def test_int8_adds_in_pairs_where_avx2s_kernels_run(flags, cap, expected, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert int8_adds_in_pairs(flags) is expected


def test_cpu_flags_are_this_cpus():
    flags = cpu_flags()
    if not Path("/proc/cpuinfo").is_file():
        assert flags == frozenset()
    elif "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in flags


def test_calibration_windows_are_generated_the_same_for_a_seed():
    first = calibration_windows(3, seed=7)
    assert first.shape == (3, 100, 27, 48, 3) and first.dtype == np.uint8
    assert np.array_equal(first, calibration_windows(3, seed=7))
    assert not np.array_equal(first, calibration_windows(3, seed=8))
    # pictures, not noise or flat fields: a spread of levels, neighbouring pixels alike
    assert 40 < first.std() < 90
    assert np.abs(np.diff(first.astype(np.int16), axis=3)).mean() < 0.3 * first.std()


def _quantized_convolutions(xml: Path) -> tuple[int, int]:
    """(convolutions whose input is quantized, all convolutions) in an OpenVINO model file."""
    import openvino as ov

    convolutions = [
        op for op in ov.Core().read_model(str(xml)).get_ordered_ops() if op.get_type_name() == "Convolution"
    ]
    fed = [op.input_value(0).get_node().get_type_name() == "FakeQuantize" for op in convolutions]
    return sum(fed), len(convolutions)


def test_the_build_writes_both_int8_models_and_the_config_asks_for_int8(int8_repository):
    xml, weights, avx2_xml, avx2_weights = int8_files(int8_repository / ONNX)
    assert xml.name == "model.int8.xml" and avx2_xml.name == "model.int8-avx2.xml"
    assert weights.stat().st_size > 1_000_000 and avx2_weights.stat().st_size > 1_000_000
    assert 'string_value: "int8"' in (int8_repository / "transnetv2/config.pbtxt").read_text()
    # every convolution reads quantized input in the main build; the AVX2 build's first block (8) reads f32
    assert _quantized_convolutions(xml) == (48, 48)
    assert _quantized_convolutions(avx2_xml) == (40, 48)


def test_auto_loads_int8_without_amx_and_bf16_on_amx(int8_repository, model_repository):
    path = str(int8_repository / ONNX)
    # `flags` choose the precision; the real CPU's choose the INT8 build (its kernels are the ones that run)
    int8 = "CPU int8 (AVX2 build)" if int8_adds_in_pairs(cpu_flags()) else "CPU int8"
    assert load_model(path, precision="int8")[1].where == int8
    assert load_model(path, precision="auto", flags={"avx2", "fma"})[1].where == int8
    assert load_model(path, precision="auto", flags={"avx2", "avx512_vnni", "avx512_bf16"})[1].where == int8
    assert load_model(path, precision="auto", flags={"avx2", "avx512_bf16", "amx_bf16"})[1].where == "CPU bf16"
    assert load_model(path, precision="auto", flags={"sse4_2"})[1].where == "CPU f32"


def test_auto_runs_f32_where_the_int8_model_fails(model_repository, tmp_path):
    (tmp_path / "model.onnx").symlink_to((model_repository / ONNX).resolve())
    Path(int8_model_path(str(tmp_path / "model.onnx"))).write_text("<net name='not a model'")
    path = str(tmp_path / "model.onnx")
    where = load_model(path, precision="auto", flags={"avx2"})[1].where
    assert where.startswith("CPU f32 (the INT8 model failed here: ")
    with pytest.raises(RuntimeError):  # asked for by name, it fails loudly
        load_model(path, precision="int8")


AVX2_ONLY = """
import sys, numpy as np, openvino as ov
from videoapi.model.runtime import int8_model_path, load_model
path, windows, out = sys.argv[1], np.load(sys.argv[2]), sys.argv[3]
int8 = load_model(path, precision="int8")[1]
print(int8.where)
outputs = [int8.run(["single_frame", "many_hot"], {"frames": windows})]
main = ov.Core().compile_model(int8_model_path(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
outputs.append([main(windows)[main.output(name)] for name in ("single_frame", "many_hot")])
np.save(out, np.array(outputs))
"""


def _int8_on_avx2_alone(path: Path, windows: np.ndarray, tmp_path: Path) -> tuple[str, np.ndarray]:
    """(where, [[single, many] of the build the runtime picks, the same of the main build]) with OpenVINO's
    kernels capped at AVX2 (oneDNN's ONEDNN_MAX_CPU_ISA, read once per process), as on an AMD EPYC Zen 2."""
    np.save(tmp_path / "windows.npy", windows)
    done = subprocess.run(
        [sys.executable, "-c", AVX2_ONLY, str(path), str(tmp_path / "windows.npy"), str(tmp_path / "out.npy")],
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), np.load(tmp_path / "out.npy")


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="the CPU must have AVX2 to stand in for one that has no more")
def test_int8_compiles_and_runs_on_an_avx2_only_cpu_from_its_own_build(int8_repository, reference_frames, tmp_path):
    windows = np.stack([reference_frames[s : s + 100] for s in (0, 2100)])
    path = int8_repository / ONNX
    where, outputs = _int8_on_avx2_alone(path, windows, tmp_path)
    assert where == "CPU int8 (AVX2 build)"
    f32 = load_model(str(path), precision="f32")[1].run(["single_frame"], {"frames": windows})[0]
    drift = np.abs(outputs[0, 0] - f32).max()
    print(f"INT8 on AVX2 alone against f32: max abs single-frame difference {drift:.4f}")
    assert drift < DRIFT


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="the CPU must have AVX2 to stand in for one that has no more")
def test_under_avx2s_kernels_the_avx2_build_stays_closer_to_f32_than_the_main_build(model_repository, tmp_path):
    """The build's own models (48 calibration windows) on generated windows they were not calibrated on:
    AVX2's pairwise int16 sums saturate in the main build's first block (measured: 0.0075 against 0.0018)."""
    path = model_repository / ONNX
    if not int8_files(path)[2].is_file():
        pytest.fail(f"no AVX2 INT8 build beside {path}: run `videoapi model build` with the int8 extra")
    windows = calibration_windows(8, seed=202, time=150)
    where, outputs = _int8_on_avx2_alone(path, windows, tmp_path)
    assert where == "CPU int8 (AVX2 build)"
    f32 = np.array(load_model(str(path), precision="f32")[1].run(["single_frame", "many_hot"], {"frames": windows}))
    avx2_build, main_build = np.abs(outputs - f32[None]).mean(axis=(1, 2, 3, 4))
    print(
        f"INT8 under AVX2 kernels against f32, mean abs difference: AVX2 build {avx2_build:.5f}, main {main_build:.5f}"
    )
    assert avx2_build < 0.5 * main_build


def test_an_onnx_file_named_otherwise_gets_the_main_int8_build_alone(model_repository, tmp_path, caplog):
    """Another exporter's node names: the AVX2 build's first block is not found, so it is left out, said so, and
    AVX2's kernels run the main build."""
    import onnx

    model = onnx.load(model_repository / ONNX)
    for node in model.graph.node:
        node.name = node.name.replace("SDDCNN", "StackedDDCNN")
    onnx.save(model, tmp_path / "renamed.onnx")
    repo = tmp_path / "repo"
    with caplog.at_level("WARNING"):
        build_model_repository(repo, onnx_file=tmp_path / "renamed.onnx", int8=True, int8_windows=2)
    xml, weights, avx2_xml, _ = int8_files(repo / ONNX)
    assert xml.is_file() and weights.is_file() and not avx2_xml.exists()
    assert "no INT8 build for AVX2's kernels: expected 8 convolutions in the first block: []" in caplog.text
    assert int8_model_path(str(repo / ONNX), {"avx2", "fma"}) == str(xml)


def test_int8_probabilities_stay_close_to_f32_and_find_the_same_cuts(int8_repository, cuts_video, tmp_path):
    path, cuts = cuts_video
    f32_repo = cpu_variant(int8_repository, tmp_path / "f32", cpu_runtime="openvino", cpu_precision="f32")
    results = {}
    build = " (AVX2 build)" if int8_adds_in_pairs(cpu_flags()) else ""  # the real CPU's kernels choose the build
    for name, repo in (("int8", int8_repository), ("f32", f32_repo)):
        detector = Detector(Settings(model_repository=repo))
        assert detector.model.where == f"openvino on CPU {name}{build if name == 'int8' else ''}"
        results[name] = detector.detect(path)
    drift = np.abs(results["int8"].predictions.single_frame - results["f32"].predictions.single_frame).max()
    print(f"INT8 against f32, cuts video: max abs single-frame difference {drift:.4f}")
    assert drift < DRIFT
    for result in results.values():
        assert [shot.start_frame for shot in result.shots[1:]] == cuts


def test_int8_through_triton_on_real_footage(int8_repository, reference_frames, triton):
    windows = np.stack([reference_frames[s : s + 100] for s in (0, 700, 2100, 3500)])
    f32 = load_model(str(int8_repository / ONNX), runtime="openvino", precision="f32")[1]
    expected = f32.run(["single_frame"], {"frames": windows})[0][..., 0]
    with TritonServer(int8_repository) as server, ShotModelClient(server.grpc_url) as client:
        single, _ = client.predict(windows)
    assert "transnetv2: openvino on CPU int8" in server.log_tail(200)
    drift = np.abs(single - expected).max()
    print(f"INT8 against f32, test.mp4 windows: max abs single-frame difference {drift:.4f}")
    assert drift < DRIFT
    assert ((single > 0.5) == (expected > 0.5))[np.abs(expected - 0.5) > DRIFT].all()


def test_a_rebuild_without_int8_removes_it_and_asking_for_int8_then_names_the_build_command(model_repository, tmp_path):
    repo = tmp_path / "repo"
    build_model_repository(repo, onnx_file=model_repository / ONNX, int8=True, int8_windows=2)
    path = repo / ONNX
    assert all(f.is_file() for f in int8_files(path))
    # another network in its place (here the same file): auto must not run the old one's INT8 model
    build_model_repository(repo, onnx_file=model_repository / ONNX, int8=False)
    assert not any(f.exists() for f in int8_files(path))

    with pytest.raises(
        FileNotFoundError, match=r"no INT8 model .*model.int8.xml.*videoapi model build --cpu-precision int8"
    ):
        load_model(str(path), precision="int8")
    # auto on a CPU without bf16 falls back to f32 when the INT8 model is not there
    assert load_model(str(path), precision="auto", flags={"avx2"})[1].where == "CPU f32"
    with pytest.raises(ModelNotBuilt, match="videoapi model build --cpu-precision int8"):
        cpu_variant(repo, tmp_path / "variant", cpu_runtime="openvino", cpu_precision="int8")
    config = repo / "transnetv2/config.pbtxt"
    auto = 'key: "cpu_precision"\n  value {\n    string_value: "auto"'
    assert auto in config.read_text()
    config.write_text(config.read_text().replace(auto, auto.replace('"auto"', '"int8"')))
    with pytest.raises(ModelNotBuilt, match="videoapi model build --cpu-precision int8"):
        LocalModel(repo / "transnetv2")
    with pytest.raises(ModelNotBuilt, match="leave out --no-int8"):
        build_model_repository(repo, onnx_file=model_repository / ONNX, cpu_precision="int8", int8=False)


def test_the_cli_builds_int8_and_says_what_to_install_without_nncf(model_repository, tmp_path):
    onnx = str(model_repository / ONNX)
    build = ["model", "build", "--onnx", onnx, "--repository", str(tmp_path), "--cpu-precision", "int8"]
    done = subprocess.run(
        [sys.executable, "-m", "videoapi", *build, "--calibration-windows", "2"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert all(f.is_file() for f in int8_files(tmp_path / ONNX))
    no_nncf = "import sys; sys.modules['nncf'] = None; from videoapi.cli import main; sys.argv[0] = 'videoapi'; main()"
    done = subprocess.run([sys.executable, "-c", no_nncf, *build], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: the INT8 model needs nncf: pip install 'videoapi[int8]', then run "
        "`videoapi model build --cpu-precision int8`"
    )
    assert all(f.is_file() for f in int8_files(tmp_path / ONNX))  # refused before anything was touched


ZEN2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
CASCADE_LAKE = frozenset({"avx2", "avx512f", "avx512_vnni"})


@pytest.mark.parametrize(
    "cap,int8_model,expected",
    [
        ("", True, "bf16"),
        ("AVX512_CORE_AMX", True, "bf16"),
        ("AVX512_CORE_BF16", True, "int8"),  # like Cooper Lake or Zen 4: AVX-512 BF16 without AMX
        ("AVX512_CORE_BF16", False, "bf16"),
        ("AVX512_CORE_VNNI", True, "int8"),
        ("AVX512_CORE_VNNI", False, "f32"),  # bf16 would only be emulated
        ("AVX2", True, "int8"),
    ],
)
def test_auto_obeys_onednns_cap(monkeypatch, cap, int8_model, expected):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert auto_precision(SAPPHIRE_RAPIDS, int8_model=int8_model) == expected


@pytest.mark.parametrize(
    "flags,cap,runtime,precision,expected",
    [
        (ZEN2, "", "auto", "auto", 200),  # INT8 from the AVX2 build: windows of 200 keep every F1 there
        (ZEN2, "", "auto", "f32", None),
        (ZEN2, "", "onnxruntime", "auto", None),
        (SAPPHIRE_RAPIDS, "", "auto", "auto", None),  # bf16
        (SAPPHIRE_RAPIDS, "", "auto", "int8", None),  # the main build on AMX's kernels
        (SAPPHIRE_RAPIDS, "AVX2", "auto", "int8", 200),  # oneDNN capped: the AVX2 build runs
        (CASCADE_LAKE, "", "auto", "auto", None),  # INT8, but VNNI's kernels and the main build
    ],
)
def test_the_preferred_window_is_200_where_the_avx2_int8_build_runs(
    model_repository, monkeypatch, flags, cap, runtime, precision, expected
):
    from videoapi.model import runtime as runtime_module

    path = model_repository / ONNX
    if not int8_files(path)[2].is_file():
        pytest.fail(f"no AVX2 INT8 build beside {path}: run `videoapi model build` with the int8 extra")
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: flags)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert runtime_module.preferred_window(str(path), runtime=runtime, precision=precision) == expected


def test_without_the_avx2_build_the_window_stays(model_repository, tmp_path, monkeypatch):
    from videoapi.model import runtime as runtime_module

    main_xml, main_bin, _, _ = int8_files(model_repository / ONNX)
    for file in (model_repository / ONNX, main_xml, main_bin):
        (tmp_path / file.name).symlink_to(file)
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: ZEN2)
    assert runtime_module.preferred_window(str(tmp_path / "model.onnx")) is None


def test_the_engine_takes_the_cpus_window_unless_one_is_set(model_repository, monkeypatch):
    from videoapi.model import runtime as runtime_module
    from videoapi.pipeline.engine import with_window_for_this_cpu

    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: ZEN2)
    monkeypatch.delenv("VIDEOAPI_WINDOW", raising=False)

    class Loaded:  # the engine's model, not loaded here: these flags are not this CPU's kernels
        version = "1"

    unset = Settings(model_repository=model_repository)
    assert with_window_for_this_cpu(unset).window == 200
    assert Detector(unset, model=Loaded()).identity().window == 200  # type: ignore[arg-type]
    chosen = Settings(model_repository=model_repository, window=150)
    assert Detector(chosen, model=Loaded()).identity().window == 150  # type: ignore[arg-type]
    monkeypatch.setenv("VIDEOAPI_WINDOW", "100")
    assert with_window_for_this_cpu(Settings(model_repository=model_repository)).window == 100
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: SAPPHIRE_RAPIDS)
    monkeypatch.delenv("VIDEOAPI_WINDOW")
    assert with_window_for_this_cpu(unset).window == 150
