"""PySceneDetect's transitions for one video, as JSON on stdout: run by whichever Python has the version wanted.

PySceneDetect 0.7 needs numpy 2, which the project's environment (nvidia-pytriton: numpy < 2) cannot have, so
bench/accuracy.py can run this file with another interpreter (`--scenedetect-python`).
Run: `python bench/scenedetect_run.py VIDEO content|adaptive`.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import scenedetect
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    path, detector = sys.argv[1], sys.argv[2]
    scenes = detect(path, {"content": ContentDetector, "adaptive": AdaptiveDetector}[detector]())
    spans = [(start.get_frames(), end.get_frames() - 1) for start, end in scenes]
    found = [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]
    print(json.dumps({"version": scenedetect.__version__, "transitions": found}))


if __name__ == "__main__":
    main()
