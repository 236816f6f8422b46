"""PySceneDetect's transitions for one video, as JSON on stdout: run by whichever Python has the version wanted.

PySceneDetect 0.7 needs numpy 2, which the project's environment (nvidia-pytriton: numpy < 2) cannot have, so
bench/accuracy.py can run this file with another interpreter (`--scenedetect-python`); bench/speed.py times
`scenedetect_transitions` in its own process. It imports nothing of the project, so that any Python runs it.
Run: `python bench/scenedetect_run.py VIDEO content|adaptive`.
"""

from __future__ import annotations

import json
import sys


def scenedetect_transitions(path: str, detector: str) -> list[tuple[int, int]]:
    """PySceneDetect's transitions (last frame of a scene, first of the next) with one detector at its defaults."""
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    scenes = detect(path, {"content": ContentDetector, "adaptive": AdaptiveDetector}[detector]())
    spans = [(start.get_frames(), end.get_frames() - 1) for start, end in scenes]
    return [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]


def main() -> None:
    import scenedetect

    found = scenedetect_transitions(sys.argv[1], sys.argv[2])
    print(json.dumps({"version": scenedetect.__version__, "transitions": found}))


if __name__ == "__main__":
    main()
