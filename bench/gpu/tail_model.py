"""A model of a burst's tail on a GPU node (no measurement): what the tail rule (`q`, VIDEOAPI_CPU_DECODE_MIN_BACKLOG)
might give, to choose the values a GPU call tries.

Its inputs are a gpu-service result's two rows (NVDEC alone and a hybrid of the same call): frames a job, the NVDEC
slots, the CPU tasks, and from the steady frames/s each decoder's time a job (an NVDEC job takes `tn` beside CPU
decodes and `tn_alone` without them, a CPU job `tc`). The model: a pool of tasks takes the queued jobs in order, a
job decodes on NVDEC when a slot is free, else on the CPU when a CPU task is free and (with q) at least q jobs are
queued, else it waits for a slot; each job's time is its decoder's mean times a uniform draw in 1 +- SPREAD. No
ramp-up, no submissions spread over time: it tells the tail's share, not the node's frames/s.

Run: `python bench/gpu/tail_model.py [RESULT] [PLAN_NVDEC] [PLAN_HYBRID]` (default: gpu-service-h100-2026-12-07e,
w6c4b, w10c4n24t2p19b); prints the whole burst's time and the ratio to NVDEC alone for each q.
"""

from __future__ import annotations

import heapq
import json
import random
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SPREAD = 0.25
DRAWS = 200


def burst(rng: random.Random, jobs: int, slots: int, cpus: int, tn: float, tn_alone: float, tc: float, q: int | None):
    """One burst: (its time, jobs decoded on the CPU)."""
    t, queued, nvdec_free, cpu_free, idle, waiting, on_cpu = 0.0, jobs, slots, cpus, slots + cpus, 0, 0
    ends: list[tuple[float, str]] = []

    def draw(mean: float) -> float:
        return mean * rng.uniform(1 - SPREAD, 1 + SPREAD)

    while True:
        while idle and queued:
            queued, idle = queued - 1, idle - 1
            if nvdec_free:
                nvdec_free -= 1
                heapq.heappush(ends, (t + draw(tn if cpu_free < cpus else tn_alone), "nvdec"))
            elif cpu_free and (q is None or queued >= q):
                cpu_free, on_cpu = cpu_free - 1, on_cpu + 1
                heapq.heappush(ends, (t + draw(tc), "cpu"))
            else:
                waiting += 1
        while waiting and nvdec_free:
            waiting, nvdec_free = waiting - 1, nvdec_free - 1
            heapq.heappush(ends, (t + draw(tn if cpu_free < cpus else tn_alone), "nvdec"))
        if not ends:
            return t, on_cpu
        t, decoder = heapq.heappop(ends)
        idle += 1
        if decoder == "nvdec":
            nvdec_free += 1
        else:
            cpu_free += 1


def plan_numbers(label: str) -> tuple[int, int, int]:
    """'w10c4n24t2p19b' to (tasks, NVDEC slots, CPU tasks); a plan without n: every task on NVDEC."""
    workers, rest = label.removesuffix("b").lstrip("w").split("c", 1)
    concurrency = int("".join(ch for ch in rest.split("n")[0] if ch.isdigit()))
    tasks = int(workers) * concurrency
    if "n" not in rest:
        return tasks, tasks, 0
    slots = int("".join(ch for ch in rest.split("n")[1].split("t")[0].split("p")[0].split("q")[0]))
    return tasks, slots, tasks - slots


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "gpu-service-h100-2026-12-07e"
    alone_label = sys.argv[2] if len(sys.argv) > 2 else "w6c4b"
    hybrid_label = sys.argv[3] if len(sys.argv) > 3 else "w10c4n24t2p19b"
    rows = json.loads((RESULTS / f"{name.removesuffix('.json')}.json").read_text())["figures"]["service"]
    alone, hybrid = rows[alone_label], rows[hybrid_label]
    jobs = hybrid["jobs"]
    per_job = hybrid["frames"] / jobs
    nvdec_tasks = plan_numbers(alone_label)[0]
    _, slots, cpus = plan_numbers(hybrid_label)
    share = hybrid["decoders"]["pyav"] / sum(hybrid["decoders"].values())
    tn_alone = per_job * nvdec_tasks / alone["steady_frames_per_s"]
    tn = per_job * slots / (hybrid["steady_frames_per_s"] * (1 - share))
    tc = per_job * cpus / (hybrid["steady_frames_per_s"] * share)
    print(f"{name}: {jobs} jobs of {per_job:.0f} frames; NVDEC job {tn_alone:.2f} s alone, {tn:.2f} s beside CPU jobs;")
    print(f"CPU job {tc:.2f} s; {slots} slots, {cpus} CPU tasks; each time x uniform(1 +- {SPREAD}), {DRAWS} draws")
    base = sum(
        burst(random.Random(s), jobs, nvdec_tasks, 0, tn_alone, tn_alone, tn_alone, None)[0] for s in range(DRAWS)
    )
    base /= DRAWS
    print(f"NVDEC alone: {base:.1f} s")
    for q in (None, 8, 16, 24, 32, 40, 48, 64):
        runs = [burst(random.Random(s), jobs, slots, cpus, tn, tn_alone, tc, q) for s in range(DRAWS)]
        took = sum(r[0] for r in runs) / DRAWS
        cpu_jobs = sum(r[1] for r in runs) / DRAWS
        print(f"q={q or 'off':>4}: {took:5.1f} s, {cpu_jobs:4.0f} jobs on the CPU, {base / took:.3f}x NVDEC alone")


if __name__ == "__main__":
    main()
