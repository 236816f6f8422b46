"""Pictures of a result: one keyframe per shot on a thumbnail sheet, and an overview PNG of frames and predictions.

The overview follows the reference TransNetV2 visualisation: 48x27 frames, 25 to a row, each with a green bar
(single-frame probability) and a blue bar (many-hot) on its right. Long videos show every k-th frame, with the
highest probability of its k frames, so the picture and the memory it takes stay bounded.

Every picture here is shown as the player shows it: turned upright by the display matrix and at the display's
aspect (sample aspect ratio applied). The frames are decoded and scaled as stored (the model's input is not
turned); tiles are turned upright when they are put on a picture.

Over 300 lines because the keyframe sheet and the overview share the decoding, seeking and upright-tile
helpers below; they are one idea, pictures of a result.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.scratch import job_scratch
from videoapi.pipeline.shots import max_per_stride

if TYPE_CHECKING:
    from videoapi.pipeline.probe import VideoInfo

OVERVIEW_COLUMNS = 25


@dataclass
class OverviewSampler:
    """Keeps every `stride`-th model frame (27x48x3) of frames start..stop-1, by global frame number."""

    stride: int
    start: int = 0
    stop: int | None = None
    frames: list[NDArray[Any]] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)

    @classmethod
    def for_video(cls, frame_count: int, max_frames: int, start: int = 0, stop: int | None = None) -> OverviewSampler:
        return cls(stride=max(1, math.ceil(frame_count / max_frames)), start=start, stop=stop)

    def tap(self, frames: Iterable[NDArray[Any]], first: int) -> Iterator[NDArray[Any]]:
        """Pass `frames` (the first being frame number `first`) through, keeping the sampled ones."""
        for index, frame in enumerate(frames, start=first):
            if index % self.stride == 0 and index >= self.start and (self.stop is None or index < self.stop):
                self.frames.append(frame.copy())
                self.indices.append(index)
            yield frame

    def arrays(self) -> tuple[NDArray[Any], NDArray[Any]]:
        frames = np.stack(self.frames) if self.frames else np.zeros((0, 27, 48, 3), np.uint8)
        return frames, np.asarray(self.indices, dtype=np.int64)


def upright(picture: NDArray[Any], rotation: int) -> NDArray[Any]:
    """`picture` turned `rotation` degrees counterclockwise (a multiple of 90: VideoInfo.rotation), as FFmpeg's
    autorotate shows it."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(picture, turns)) if turns else picture


def as_stored(size: tuple[int, int], rotation: int) -> tuple[int, int]:
    """An upright (width, height) as the decoded picture has it, before it is turned."""
    return (size[1], size[0]) if rotation % 180 == 90 else size


def shown_rotation(info: VideoInfo) -> int:
    """The turn that makes a VideoInfo's picture upright (0 for an angle that is not a multiple of 90)."""
    return info.rotation % 360 if info.rotation % 90 == 0 else 0


def shown_size(info: VideoInfo) -> tuple[int, int]:
    """A VideoInfo's picture as shown: width, height (sample aspect ratio applied, then rotation)."""
    return info.display_width or info.width, info.display_height or info.height


def overview_tiles(frames: NDArray[Any], rotation: int = 0, aspect: float | None = None) -> NDArray[Any]:
    """Model frames (27x48, as stored) turned upright and, given `aspect` (shown width/height), scaled to it at
    the same number of rows."""
    rows = frames.shape[1]
    width = int(np.clip(round(rows * aspect), 4, 4 * rows)) if aspect else None
    if not rotation % 360 and width in (None, frames.shape[2]):
        return frames
    shown = []
    for frame in frames:
        turned = upright(frame, rotation)
        if width is not None:
            turned = cv2.resize(turned, (width, rows), interpolation=cv2.INTER_AREA)
        shown.append(turned)
    return np.stack(shown) if shown else np.zeros((0, rows, width or rows, 3), np.uint8)


def overview_png(
    frames: NDArray[Any],
    single_frame: NDArray[Any],
    many_hot: NDArray[Any],
    stride: int = 1,
    *,
    rotation: int = 0,
    aspect: float | None = None,
) -> bytes:
    """The reference's prediction visualisation as PNG; tile i is frame i*stride and its stride frames' maximum.

    `rotation` and `aspect` (the picture as shown: VideoInfo.rotation, display width/height) turn the tiles
    upright and give them the display's aspect, 27 pixels high; by default they are the model's 48x27 frames.
    """
    frames = overview_tiles(frames, rotation, aspect)
    count, height, width = frames.shape[:3]
    bars = [max_per_stride(probabilities, stride)[:count] for probabilities in (single_frame, many_hot)]
    rows = max(1, math.ceil(count / OVERVIEW_COLUMNS))
    tile_h, tile_w = height + 1, width + len(bars)
    image = np.zeros((rows * tile_h, OVERVIEW_COLUMNS * tile_w, 3), np.uint8)
    for i in range(count):
        y, x = (i // OVERVIEW_COLUMNS) * tile_h, (i % OVERVIEW_COLUMNS) * tile_w
        image[y : y + height, x : x + width] = frames[i]
        for j, values in enumerate(bars):
            length = round(float(values[i]) * (height - 1))
            if length:
                colour = [0, 0, 0]
                colour[(j + 1) % 3] = 255  # green for single-frame, blue for many-hot, as the reference draws
                image[y + height - length : y + height, x + width + j] = colour
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return png.tobytes()


def keyframes(spans: list[tuple[int, int]]) -> list[int]:
    """The frame that stands for each shot: its middle one."""
    return [(start + end) // 2 for start, end in spans]


def read_frames_at(
    path: Path,
    wanted: list[int],
    seek_gap: int = 300,
    shrink: Callable[[NDArray[Any]], NDArray[Any]] | None = None,
) -> dict[int, NDArray[Any]]:
    """Decode just the frames numbered in `wanted` (BGR, as stored: not turned by the display matrix): reads through
    short gaps, seeks over long ones.

    `shrink` is applied to each frame as it is read, so thousands of keyframes never sit in memory at full size.
    """
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)  # as the decode has them; keyframe_tiles turns them upright
    found: dict[int, NDArray[Any]] = {}
    try:
        position = 0
        for target in sorted(set(wanted)):
            if target - position > seek_gap:
                cap.set(cv2.CAP_PROP_POS_FRAMES, target)
                position = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
            while position < target and cap.grab():  # grab decodes without converting: cheap
                position += 1
            ok, bgr = cap.read()
            if not ok:
                break
            found[target] = shrink(bgr) if shrink else bgr
            position = target + 1
    finally:
        cap.release()
    return found


KEYFRAME_MIN_STRIDE = 4  # a candidate every 4th frame: about 2% of the decode's time at 1080p
KEYFRAME_MAX_CANDIDATES = 20_000  # about 80 MB of spilled JPEG tiles at most, however long the video


@dataclass
class KeyframeCandidates:
    """Tile-sized JPEGs of every `stride`-th frame of start..stop-1, taken during the job's one decode.

    Each shot's keyframe is the candidate inside it nearest its middle, so the video is not decoded
    a second time for the thumbnails; only a shot shorter than the stride has none, and is read
    from the video afterwards (`keyframe_tiles`). The JPEGs go to a spill file as they are taken,
    so memory holds their offsets alone. Implements decode.TileTap and TileSource.
    Tiles are kept as decoded (`size`: the display's aspect, not yet turned); `rotation` turns them upright.
    """

    stride: int
    size: tuple[int, int]  # tile width, height, as the frame is stored (turned by `rotation` when shown)
    start: int = 0
    stop: int | None = None
    spill: BinaryIO = field(default_factory=lambda: tempfile.TemporaryFile(prefix="videoapi-tiles-"))
    places: dict[int, tuple[int, int]] = field(default_factory=dict)  # frame number: (offset, length) in spill
    rotation: int = 0  # degrees counterclockwise that turn a tile upright (VideoInfo.rotation)

    @classmethod
    def for_video(
        cls,
        width: int,
        height: int,
        frame_count: int,
        *,
        tile_height: int = 90,
        start: int = 0,
        stop: int | None = None,
    ) -> KeyframeCandidates:
        return cls(candidate_stride(frame_count), tile_size(width, height, tile_height), start, stop)

    @classmethod
    def for_info(cls, info: VideoInfo, *, start: int = 0, stop: int | None = None) -> KeyframeCandidates:
        """For a probed video (VideoInfo): tiles at the display's aspect, upright once turned by its rotation."""
        size, rotation = keyframe_geometry(info)
        return cls(candidate_stride(info.frame_count), size, start, stop, rotation=rotation)

    def wants(self, index: int) -> bool:
        return index % self.stride == 0 and index >= self.start and (self.stop is None or index < self.stop)

    def add(self, index: int, bgr: NDArray[Any]) -> None:
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        offset = self.spill.seek(0, io.SEEK_END)
        self.spill.write(jpeg.tobytes())
        self.places[index] = (offset, len(jpeg))

    def numbers(self) -> NDArray[Any]:
        return np.asarray(sorted(self.places), dtype=np.int64)

    def tile(self, index: int) -> NDArray[Any]:
        return _read_tile(self.spill, *self.places[index])

    def index_arrays(self) -> dict[str, NDArray[Any]]:
        """Where each JPEG lies in the spill file (frame numbers, offsets, lengths), for a segment's npz."""
        numbers = self.numbers()
        places = np.asarray([self.places[int(n)] for n in numbers], dtype=np.int64).reshape(-1, 2)
        return {"candidate_frames": numbers, "candidate_places": places}

    def close(self) -> None:
        self.spill.close()


def _read_tile(spill: BinaryIO, offset: int, length: int) -> NDArray[Any]:
    """The JPEG at `offset` in a spill file, decoded (BGR)."""
    spill.seek(offset)
    return cv2.imdecode(np.frombuffer(spill.read(length), np.uint8), cv2.IMREAD_COLOR)


def candidate_stride(frame_count: int) -> int:
    return max(KEYFRAME_MIN_STRIDE, math.ceil(frame_count / KEYFRAME_MAX_CANDIDATES))


def tile_size(width: int, height: int, tile_height: int = 90) -> tuple[int, int]:
    aspect = width / height if width and height else 16 / 9
    return int(np.clip(round(tile_height * aspect), 16, 4 * tile_height)), tile_height


def keyframe_geometry(info: VideoInfo, tile_height: int = 90) -> tuple[tuple[int, int], int]:
    """A probed video's keyframe tile size as decoded (width, height: the display's aspect, before the turn)
    and the rotation that turns it upright, to `tile_height` rows."""
    rotation = shown_rotation(info)
    return as_stored(tile_size(*shown_size(info), tile_height), rotation), rotation


class StoredCandidates:
    """The keyframe candidates of several segments, each segment's spill file stored elsewhere (a TileSource).

    Every frame number is in memory; a segment's spill file is fetched (to a temporary file) when a tile of
    it is first asked for, one segment at a time, so memory stays the same whatever the video's length.
    """

    def __init__(
        self,
        size: tuple[int, int],
        segments: dict[str, dict[str, NDArray[Any]]],
        fetch: Callable[[str, Path], Path],
        rotation: int = 0,
    ):
        self.size, self._fetch, self.rotation = size, fetch, rotation
        self._places: dict[int, tuple[str, int, int]] = {}
        for key, arrays in segments.items():
            for number, (offset, length) in zip(arrays["candidate_frames"], arrays["candidate_places"]):
                self._places[int(number)] = (key, int(offset), int(length))
        self._scratch = ExitStack()  # a job folder: swept if the process is killed before close()
        self._dir = self._scratch.enter_context(job_scratch())
        self._open: tuple[str, BinaryIO] | None = None

    def numbers(self) -> NDArray[Any]:
        return np.asarray(sorted(self._places), dtype=np.int64)

    def tile(self, index: int) -> NDArray[Any]:
        key, offset, length = self._places[index]
        if self._open is None or self._open[0] != key:
            self._close_segment()
            path = self._fetch(key, self._dir / "segment-tiles")
            self._open = (key, path.open("rb"))
        return _read_tile(self._open[1], offset, length)

    def _close_segment(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def close(self) -> None:
        self._close_segment()
        self._scratch.close()


class TileSource(Protocol):
    """Where keyframe candidates are: their frame numbers, and their tiles one by one in increasing order.

    Tiles are `size` as stored; `rotation` degrees counterclockwise turn them upright.
    """

    size: tuple[int, int]
    rotation: int

    def numbers(self) -> NDArray[Any]: ...

    def tile(self, index: int) -> NDArray[Any]: ...


def pick_candidates(numbers: NDArray[Any], spans: list[tuple[int, int]]) -> list[int | None]:
    """Per shot (first, last frame), the candidate (sorted `numbers`) inside it nearest its middle, or None."""
    chosen: list[int | None] = []
    for (first, last), middle in zip(spans, keyframes(spans)):
        at = int(np.searchsorted(numbers, middle))
        near = [int(numbers[i]) for i in (at - 1, at) if 0 <= i < len(numbers) and first <= numbers[i] <= last]
        chosen.append(min(near, key=lambda n: (abs(n - middle), n)) if near else None)
    return chosen


def keyframe_tiles(
    candidates: TileSource,
    spans: list[tuple[int, int]],
    open_video: Callable[[], AbstractContextManager[Path]],
) -> tuple[list[int], Iterator[NDArray[Any] | None]]:
    """Each shot's keyframe number, and their tiles (upright: `shown_tile_size(candidates)`): from the
    candidates, or read from the video for shots without one.

    The tiles come one at a time in frame order, so neither they nor a source's segments pile up in memory.
    """
    chosen = pick_candidates(candidates.numbers(), spans)
    middles = keyframes(spans)
    missing = [middle for middle, pick in zip(middles, chosen) if pick is None]
    read: dict[int, NDArray[Any]] = {}
    if missing:

        def shrink(bgr: NDArray[Any]) -> NDArray[Any]:
            return cv2.resize(bgr, candidates.size, interpolation=cv2.INTER_AREA)

        with open_video() as path:
            read = read_frames_at(path, missing, shrink=shrink)
    frames = [middle if pick is None else pick for middle, pick in zip(middles, chosen)]
    rotation = candidates.rotation
    tiles = (
        _upright_or_none(read.get(middle) if pick is None else candidates.tile(pick), rotation)
        for middle, pick in zip(middles, chosen)
    )
    return frames, tiles


def _upright_or_none(tile: NDArray[Any] | None, rotation: int) -> NDArray[Any] | None:
    return None if tile is None else upright(tile, rotation)


def shown_tile_size(candidates: TileSource) -> tuple[int, int]:
    """The keyframe tiles' width and height once upright (what keyframe_tiles gives, what the sheet lays out)."""
    return as_stored(candidates.size, candidates.rotation)


@dataclass(frozen=True)
class ThumbnailSheet:
    """One JPEG holding a tile per shot, left to right, top to bottom."""

    jpeg: bytes
    tile_width: int
    tile_height: int
    columns: int
    count: int

    def layout(self) -> dict[str, Any]:
        return {
            "tile_width": self.tile_width,
            "tile_height": self.tile_height,
            "columns": self.columns,
            "count": self.count,
        }


def thumbnail_sheet(
    tiles: Iterable[NDArray[Any] | None], count: int, size: tuple[int, int], columns: int = 10
) -> ThumbnailSheet:
    """`count` tiles (BGR, `size` = width, height; None stays black) on one sheet, `columns` to a row."""
    tile_width, tile_height = size
    columns = max(1, min(columns, count))
    rows = max(1, math.ceil(count / columns))
    sheet = np.zeros((rows * tile_height, columns * tile_width, 3), np.uint8)
    for i, tile in enumerate(tiles):
        if tile is not None:
            y, x = (i // columns) * tile_height, (i % columns) * tile_width
            sheet[y : y + tile_height, x : x + tile_width] = tile
    ok, jpeg = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 82])
    assert ok
    return ThumbnailSheet(jpeg.tobytes(), tile_width, tile_height, columns, count)
