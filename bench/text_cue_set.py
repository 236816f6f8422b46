"""Generated videos for the text cues (EndCredits, OpeningCredits, Slate, StudioLogo) and the text that is none.

`write_case(path, kind, seed)` renders one case (640x360, 25 fps, H.264) and returns its truth: a list of
(type, start_s, end_s) cues (none for a negative kind). The programme's picture is photographs (scikit-image's)
panned and cut every few seconds; text is drawn with OpenCV's Hershey fonts, names from random syllables.

Positive kinds: end credits scrolling over black or over a darkened picture, end credit cards over black,
opening names over picture or cards over black, an electronic slate or a slate board, a studio logo on a
gradient. Negative kinds: news lower thirds, subtitles, documentary captions, a title card in the middle,
a sports score bug, and the kinds real footage fired on: text typed on a screen near the start (a terminal or a
dialog box, lines appearing a character at a time and staying), text filmed in the picture (a sign, a document, a
screen, moving with the camera) and centred captions over the moving picture from the start (sentences, not names).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

WIDTH, HEIGHT, FPS = 640, 360, 25
POSITIVE = (
    "end_scroll",
    "end_scroll_picture",
    "end_cards",
    "opening_picture",
    "opening_cards",
    "slate",
    "slate_board",
    "logo",
)
NEGATIVE = ("lower_thirds", "subtitles", "documentary", "title_card", "score_bug", "typed", "filmed_text", "captions")
KINDS = POSITIVE + NEGATIVE
TUNE_SEEDS = tuple(range(1, 11))  # what the rules were chosen on
# run once with the final rules; 101-105, the first REPORT split, was seen before a rule change and is retired
REPORT_SEEDS = tuple(range(201, 211))
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX)
SYLLABLES = "an ber car dor el fin gar hol ie jon ka lin mar nor ol pet ra sen tor ul vik wen yas zo".split()
WORDS = "the a of and to in was is it they we he she that this from when where after never always".split()
ROLES = "Directed by|Produced by|Written by|Music by|Edited by|Camera|Sound|Costumes|Production Design".split("|")
Frame = NDArray[Any]
Painter = Callable[[int, Frame], None]  # (frame number, picture) -> draws on it


def _photos() -> list[Frame]:
    from skimage import data

    pictures = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.hubble_deep_field()]
    out = []
    for picture in pictures:
        bgr = cv2.cvtColor(picture[..., :3], cv2.COLOR_RGB2BGR)
        out.append(cv2.resize(bgr, (WIDTH * 3 // 2, HEIGHT * 3 // 2), interpolation=cv2.INTER_AREA))
    return out


def name(rng: np.random.Generator) -> str:
    def word() -> str:
        return "".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()

    return f"{word()} {word()}"


class Programme:
    """Photographs panned, a cut every 2.5-5 s."""

    def __init__(self, rng: np.random.Generator, photos: list[Frame]):
        self.shots: list[tuple[int, Frame, tuple[float, float], tuple[float, float]]] = []
        frame = 0
        while frame < 3600:
            length = int(rng.integers(int(2.5 * FPS), 5 * FPS))
            photo = photos[int(rng.integers(len(photos)))]
            start = (float(rng.uniform(0, photo.shape[1] - WIDTH)), float(rng.uniform(0, photo.shape[0] - HEIGHT)))
            speed = (float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-0.8, 0.8)))
            self.shots.append((frame, photo, start, speed))
            frame += length

    def shot(self, index: int) -> int:
        """The number of the shot frame `index` is in."""
        return next(k for k in range(len(self.shots) - 1, -1, -1) if self.shots[k][0] <= index)

    def corner(self, index: int) -> tuple[int, int]:
        """Where frame `index` lies on its shot's photograph: (left, top)."""
        first, photo, (x, y), (dx, dy) = self.shots[self.shot(index)]
        t = index - first
        return int(np.clip(x + dx * t, 0, photo.shape[1] - WIDTH)), int(np.clip(y + dy * t, 0, photo.shape[0] - HEIGHT))

    def picture(self, index: int) -> Frame:
        left, top = self.corner(index)
        photo = self.shots[self.shot(index)][1]
        return photo[top : top + HEIGHT, left : left + WIDTH].copy()


def centred(
    image: Frame, text: str, y: int, scale: float, font: int, colour: tuple[int, int, int], x: int | None = None
) -> None:
    (w, _), _ = cv2.getTextSize(text, font, scale, 1 + int(scale > 0.8))
    left = (WIDTH - w) // 2 if x is None else x - w // 2
    cv2.putText(image, text, (left, y), font, scale, colour, 1 + int(scale > 0.8), cv2.LINE_AA)


def scroll_lines(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    return [(str(rng.choice(ROLES)), name(rng)) for _ in range(count)]


def write_case(path: Path, kind: str, seed: int) -> list[tuple[str, float, float]]:
    """Render case `kind` with `seed` to `path` (H.264 MP4); its true cues (type, start s, end s)."""
    rng = np.random.default_rng(seed * 1000 + KINDS.index(kind))
    programme = Programme(rng, _photos())
    font = FONTS[int(rng.integers(len(FONTS)))]
    white = (255, 255, 255)
    truth: list[tuple[str, float, float]] = []
    layers: list[tuple[int, int, Callable[[int], Frame]]] = []  # (first, stop, frame maker)

    def black(_: int) -> Frame:
        return np.zeros((HEIGHT, WIDTH, 3), np.uint8)

    total = int(rng.uniform(20, 24) * FPS)
    if kind in ("end_scroll", "end_scroll_picture", "end_cards"):
        begin = int(rng.uniform(11, 14) * FPS)
        tail = int(rng.choice([0, 1, 2])) * FPS // 2  # black after the credits, sometimes
        layers.append((0, begin, programme.picture))
        end = total - tail
        if kind == "end_cards":
            cards = [
                [(str(rng.choice(ROLES)), name(rng))] + ([("", name(rng))] if rng.random() < 0.5 else [])
                for _ in range(6)
            ]
            card_len, gap = int(rng.uniform(1.8, 2.6) * FPS), int(rng.choice([0, 6]))

            def card_frame(i: int) -> Frame:
                image = black(i)
                k, at = divmod(i - begin, card_len + gap)
                if at < card_len:
                    lines = cards[k % len(cards)]
                    y = HEIGHT // 2 - 20 * len(lines)
                    for role, who in lines:
                        if role:
                            centred(image, role, y, 0.6, font, (200, 200, 200))
                            y += 32
                        centred(image, who, y, 0.9, font, white)
                        y += 40
                return image

            end = begin + ((end - begin) // (card_len + gap)) * (card_len + gap) - gap
            layers.append((begin, end, card_frame))
        else:
            lines = scroll_lines(rng, 60)
            speed = rng.uniform(40, 70) / FPS  # pixels a frame
            two_columns = rng.random() < 0.5
            dim = kind == "end_scroll_picture"

            def scroll_frame(i: int) -> Frame:
                image = (programme.picture(i) * 0.3).astype(np.uint8) if dim else black(i)
                offset = HEIGHT + 10 - (i - begin) * speed
                for k, (role, who) in enumerate(lines):
                    y = int(offset + k * 34)
                    if -10 < y < HEIGHT + 30:
                        if two_columns:
                            (w, _), _ = cv2.getTextSize(role, font, 0.55, 1)
                            cv2.putText(
                                image, role, (WIDTH // 2 - 12 - w, y), font, 0.55, (210, 210, 210), 1, cv2.LINE_AA
                            )
                            cv2.putText(image, who, (WIDTH // 2 + 12, y), font, 0.55, white, 1, cv2.LINE_AA)
                        else:
                            centred(image, f"{role}  {who}" if k % 3 else who, y, 0.6, font, white)
                return image

            layers.append((begin, end, scroll_frame))
        layers.append((end, total, black))
        truth.append(("EndCredits", begin / FPS, end / FPS))
    elif kind in ("opening_picture", "opening_cards"):
        lead = int(rng.uniform(0.5, 2.0) * FPS)
        card_len, gap = int(rng.uniform(2.0, 3.0) * FPS), int(rng.uniform(0.5, 1.5) * FPS)
        count = int(rng.integers(3, 5))
        names = [[name(rng)] + ([str(rng.choice(ROLES)).upper()] if rng.random() < 0.3 else []) for _ in range(count)]
        end = lead + count * (card_len + gap) - gap
        over_picture = kind == "opening_picture"
        heights = [float(rng.uniform(0.4, 0.65)) for _ in range(count)]

        def opening(i: int) -> Frame:
            image = programme.picture(i) if over_picture else black(i)
            k, at = divmod(i - lead, card_len + gap)
            if 0 <= k < count and at < card_len:
                y = int(heights[k] * HEIGHT)
                for line in names[k]:
                    centred(image, line, y, 1.0, font, white)
                    y += 40
            return image

        layers.append((0, lead, programme.picture if over_picture else black))
        layers.append((lead, end, opening))
        layers.append((end, total, programme.picture))
        truth.append(("OpeningCredits", lead / FPS, end / FPS))
    elif kind in ("slate", "slate_board"):
        lead = int(rng.uniform(0.5, 2) * FPS)
        end = lead + int(rng.uniform(3, 6) * FPS)
        fields = [
            f"PRODUCTION: {name(rng).upper()}",
            f"SCENE: {rng.integers(1, 99)}",
            f"TAKE: {rng.integers(1, 9)}",
            f"ROLL: A{rng.integers(1, 999):03d}",
            f"DATE: 2026-{rng.integers(1, 12):02d}-{rng.integers(1, 28):02d}",
            f"DIRECTOR: {name(rng).upper()}",
        ][: int(rng.integers(4, 7))]
        board = kind == "slate_board"
        background = tuple(int(v) for v in rng.integers(20, 70, 3))

        def slate(i: int) -> Frame:
            image = np.full((HEIGHT, WIDTH, 3), background, np.uint8)
            left, top = (150, 70) if board else (90, 60)
            if board:
                image[:] = 120
                cv2.rectangle(image, (130, 40), (510, 330), (15, 15, 15), -1)
                for k in range(8):  # the clapper's stripes
                    x = 130 + k * 48
                    cv2.fillConvexPoly(
                        image, np.array([[x, 40], [x + 24, 40], [x + 34, 62], [x + 10, 62]]), (240, 240, 240)
                    )
                top = 100
            for k, text in enumerate(fields):
                cv2.putText(image, text, (left, top + k * 40), font, 0.6 if board else 0.8, white, 2, cv2.LINE_AA)
            return image

        layers += [(0, lead, black), (lead, end, slate), (end, end + FPS, black), (end + FPS, total, programme.picture)]
        truth.append(("Slate", lead / FPS, end / FPS))
    elif kind == "logo":
        lead = int(rng.uniform(0.3, 1.5) * FPS)
        end = lead + int(rng.uniform(3, 7) * FPS)
        colours = rng.integers(0, 200, (2, 3)).astype(np.float32)
        shape = int(rng.integers(3))
        word = name(rng).split()[0].upper() + " PICTURES"
        with_word = rng.random() < 0.5
        mark = tuple(int(v) for v in rng.integers(180, 256, 3))

        def logo(i: int) -> Frame:
            t = (i - lead) / max(1, end - lead)
            ramp = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None] * (0.7 + 0.3 * t)
            image = (colours[0] * (1 - ramp) + colours[1] * ramp).astype(np.uint8).repeat(WIDTH, axis=1)
            cx, cy, r = WIDTH // 2, HEIGHT // 2 - (20 if with_word else 0), 55
            if shape == 0:
                cv2.circle(image, (cx, cy), r, mark, 6, cv2.LINE_AA)
                cv2.circle(image, (cx, cy), r // 2, mark, -1, cv2.LINE_AA)
            elif shape == 1:
                star = [
                    (
                        cx + (r if k % 2 == 0 else r // 2) * np.sin(k * np.pi / 5),
                        cy - (r if k % 2 == 0 else r // 2) * np.cos(k * np.pi / 5),
                    )
                    for k in range(10)
                ]
                cv2.fillPoly(image, [np.array(star, np.int32)], mark, cv2.LINE_AA)
            else:
                cv2.polylines(
                    image,
                    [np.array([[cx, cy - r], [cx + r, cy + r // 2], [cx - r, cy + r // 2]], np.int32)],
                    True,
                    mark,
                    8,
                    cv2.LINE_AA,
                )
            if with_word:
                centred(image, word, cy + r + 45, 0.8, font, mark)
            return image

        layers += [(0, lead, black), (lead, end, logo), (end, total, programme.picture)]
        truth.append(("StudioLogo", lead / FPS, end / FPS))
    else:
        layers.append((0, total, _negative(kind, rng, programme, font, total)))
    _write(path, total, layers)
    return truth


def _negative(
    kind: str, rng: np.random.Generator, programme: Programme, font: int, total: int
) -> Callable[[int], Frame]:
    """A programme with text that is no cue of these: lower thirds, subtitles, captions, a title card, a score bug,
    typed text, text filmed in the picture."""
    white = (255, 255, 255)
    if kind == "typed":
        return _typed(rng, programme, font)
    if kind == "filmed_text":
        return _filmed_text(rng, programme, font)
    if kind == "captions":
        return _captions(rng, programme, font, total)
    if kind == "title_card":
        at = int(total * rng.uniform(0.4, 0.55))
        length = int(rng.uniform(2.5, 4) * FPS)
        lines = [f"CHAPTER {rng.choice(['ONE', 'TWO', 'THREE', 'FOUR'])}", name(rng)]

        def title(i: int) -> Frame:
            if at <= i < at + length:
                image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
                centred(image, lines[0], HEIGHT // 2 - 10, 1.1, font, white)
                centred(image, lines[1], HEIGHT // 2 + 35, 0.7, font, white)
                return image
            return programme.picture(i)

        return title
    # overlays that come and go: (first, stop, text lines)
    spans: list[tuple[int, int, list[str]]] = []
    frame = int(rng.uniform(0, 1) * FPS)
    while frame < total:
        length = int(rng.uniform(2, 5) * FPS)
        if kind == "subtitles":
            words = " ".join(name(rng).lower() for _ in range(int(rng.integers(2, 4))))
            spans.append((frame, frame + length, [words] + ([name(rng).lower()] if rng.random() < 0.4 else [])))
        elif kind == "lower_thirds":
            spans.append(
                (frame, frame + length, [name(rng).upper(), str(rng.choice(["Reporter", "Minister", "Witness"]))])
            )
        elif kind == "documentary":
            spans.append((frame, frame + length, [f"{name(rng).split()[0].upper()}, {rng.integers(1900, 2000)}"]))
        else:  # score bug: always there
            spans.append(
                (
                    frame,
                    frame + length,
                    [f"HOM {rng.integers(0, 4)}-{rng.integers(0, 4)} AWY  {rng.integers(0, 90):02d}:00"],
                )
            )
        frame += length + (0 if kind == "score_bug" else int(rng.uniform(0, 3) * FPS))
    corner = int(rng.integers(2))

    def overlay(i: int) -> Frame:
        image = programme.picture(i)
        lines = next((s[2] for s in spans if s[0] <= i < s[1]), None)
        if lines is None:
            return image
        if kind == "subtitles":
            y = HEIGHT - 30 - 30 * (len(lines) - 1)
            for line in lines:
                centred(image, line, y + 2, 0.75, font, (0, 0, 0))
                centred(image, line, y, 0.75, font, (255, 255, 255))
                y += 30
        elif kind == "lower_thirds":
            cv2.rectangle(image, (30, HEIGHT - 95), (WIDTH * 2 // 3, HEIGHT - 35), (120, 40, 20), -1)
            cv2.putText(image, lines[0], (45, HEIGHT - 68), font, 0.75, white, 2, cv2.LINE_AA)
            cv2.putText(image, lines[1], (45, HEIGHT - 44), font, 0.55, white, 1, cv2.LINE_AA)
        elif kind == "documentary":
            y = 40 if corner else HEIGHT - 40
            cv2.putText(image, lines[0], (30, y), font, 0.7, white, 1, cv2.LINE_AA)
        else:
            x, y = (20, 20) if corner else (WIDTH - 250, 20)
            cv2.rectangle(image, (x, y), (x + 230, y + 34), (30, 30, 30), -1)
            cv2.putText(image, lines[0], (x + 8, y + 24), font, 0.6, white, 1, cv2.LINE_AA)
        return image

    return overlay


def sentence(rng: np.random.Generator, words: int) -> str:
    """A caption's sentence: common words and a name's word or two."""
    chosen = [str(rng.choice(WORDS)) if rng.random() < 0.6 else name(rng).split()[0].lower() for _ in range(words)]
    return " ".join(chosen).capitalize()


def _typed(rng: np.random.Generator, programme: Programme, font: int) -> Callable[[int], Frame]:
    """A screen from near the start with text typed on it: lines appear a character at a time from one left edge
    and stay (a terminal filling the frame, or a dialog box on a console); the programme's picture after it."""
    first = int(rng.uniform(0.2, 1.5) * FPS)
    stop = first + int(rng.uniform(8, 12) * FPS)
    dialog = rng.random() < 0.5
    plain = rng.random() < 0.5
    face, scale = (
        (cv2.FONT_HERSHEY_PLAIN, float(rng.uniform(1.3, 1.8))) if plain else (font, float(rng.uniform(0.6, 0.8)))
    )
    ink = [(90, 255, 90), (255, 255, 255), (60, 190, 255)][int(rng.integers(3))]
    back = tuple(int(v) for v in rng.integers(0, 35, 3))
    left = int(rng.uniform(0.36, 0.46) * WIDTH) if dialog else int(rng.uniform(20, 80))
    top = int(rng.uniform(0.35, 0.45) * HEIGHT) if dialog else int(rng.uniform(30, 70))
    prompt = "> " if rng.random() < 0.5 else ""
    lines = [
        prompt + sentence(rng, int(rng.integers(2, 5)))
        for _ in range(int(rng.integers(2, 6) if dialog else rng.integers(4, 8)))
    ]
    lines = [line[:30] for line in lines]
    rate = float(rng.uniform(6, 14)) / FPS  # characters a frame
    pause = int(rng.uniform(0.3, 1.0) * FPS)
    starts = []  # the frame each line's first character is typed on
    at = first + pause
    for line in lines:
        starts.append(at)
        at += int(len(line) / rate) + pause
    step = int(rng.uniform(24, 34) * scale / (1.5 if plain else 0.7))  # between lines: 24-34 px at a mid scale

    def screen(i: int) -> Frame:
        if not first <= i < stop:
            return programme.picture(i)
        image = np.full((HEIGHT, WIDTH, 3), back, np.uint8)
        if dialog:  # a console's dialog box: a border, an icon at its left, the text beside it
            image[:] = (70, 40, 20)
            cv2.rectangle(image, (WIDTH // 6, top - 50), (WIDTH * 5 // 6, top + 40 + step * len(lines)), back, -1)
            cv2.rectangle(
                image, (WIDTH // 6, top - 50), (WIDTH * 5 // 6, top + 40 + step * len(lines)), (200, 200, 200), 2
            )
            cv2.circle(image, (left - 60, top + 10), 30, (150, 170, 200), -1)
        for k, line in enumerate(lines):
            shown = line[: max(0, int((i - starts[k]) * rate))]
            if shown:
                cursor = "_" if k == len(lines) - 1 or len(shown) < len(line) else ""
                blink = cursor if (i // (FPS // 3)) % 2 else ""
                cv2.putText(image, shown + blink, (left, top + k * step), face, scale, ink, 1, cv2.LINE_AA)
        return image

    return screen


def _filmed_text(rng: np.random.Generator, programme: Programme, font: int) -> Callable[[int], Frame]:
    """Text in the picture, filmed: a sign, a document or a screen on the photograph, near the frame's centre, so
    it moves with the camera's pan (the shots carrying one pan at half a pixel a frame or more)."""
    boards: dict[int, tuple[str, int, int, list[str]]] = {}  # shot -> (look, x, y on the photograph, its lines)
    for k, (first, photo, (x, y), (dx, dy)) in enumerate(programme.shots):
        if k and rng.random() < 0.4:
            continue
        dx = float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.5))
        dy = float(rng.uniform(-0.5, 0.5))
        # start where the pan has room to run
        x = float(photo.shape[1] - WIDTH - 5) if dx < 0 else 5.0
        programme.shots[k] = (first, photo, (x, y), (dx, dy))
        look = str(rng.choice(["sign", "document", "screen"]))
        count = {
            "sign": int(rng.integers(1, 3)),
            "document": int(rng.integers(4, 8)),
            "screen": int(rng.integers(2, 5)),
        }[look]
        lines = [name(rng).upper() if look == "sign" else sentence(rng, int(rng.integers(2, 5))) for _ in range(count)]
        cx = int(x) + WIDTH // 2 + int(rng.uniform(-60, 60))
        cy = int(y) + int(rng.uniform(0.35, 0.6) * HEIGHT)
        boards[k] = (look, cx, cy, lines)

    def filmed(i: int) -> Frame:
        image = programme.picture(i)
        board = boards.get(programme.shot(i))
        if board is None:
            return image
        look, cx, cy, lines = board
        left, top = programme.corner(i)
        cx, cy = cx - left, cy - top
        width = 230 if look != "document" else 200
        height = 30 + 28 * len(lines)
        paper = {"sign": (40, 110, 30), "document": (235, 235, 225), "screen": (30, 20, 10)}[look]
        ink = {"sign": (255, 255, 255), "document": (20, 20, 20), "screen": (120, 255, 120)}[look]
        cv2.rectangle(image, (cx - width // 2, cy - height // 2), (cx + width // 2, cy + height // 2), paper, -1)
        y = cy - height // 2 + 30
        for line in lines:
            if look == "sign":
                centred(image, line, y, 0.6, font, ink, x=cx)
            else:
                cv2.putText(image, line[:22], (cx - width // 2 + 12, y), font, 0.5, ink, 1, cv2.LINE_AA)
            y += 28
        return image

    return filmed


def _captions(rng: np.random.Generator, programme: Programme, font: int, total: int) -> Callable[[int], Frame]:
    """Captions centred over the moving picture from the start, as a trailer has them: sentences of four to seven
    words, one or two lines, held 2-4 s each, none at times."""
    spans: list[tuple[int, int, list[str], int]] = []  # (first, stop, lines, baseline)
    frame = int(rng.uniform(0.3, 2.0) * FPS)
    scale = float(rng.uniform(0.7, 1.0))
    while frame < total:
        length = int(rng.uniform(2, 4) * FPS)
        lines = [sentence(rng, int(rng.integers(4, 8)))] + (
            [sentence(rng, int(rng.integers(3, 6)))] if rng.random() < 0.3 else []
        )
        spans.append((frame, frame + length, lines, int(rng.uniform(0.45, 0.72) * HEIGHT)))
        frame += length + int(rng.uniform(0.5, 3) * FPS)

    def caption(i: int) -> Frame:
        image = programme.picture(i)
        span = next((s for s in spans if s[0] <= i < s[1]), None)
        if span is not None:
            y = span[3]
            for line in span[2]:
                centred(image, line, y + 2, scale, font, (0, 0, 0))
                centred(image, line, y, scale, font, (255, 255, 255))
                y += int(40 * scale)
        return image

    return caption


def _write(path: Path, total: int, layers: list[tuple[int, int, Callable[[int], Frame]]]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for index in range(total):
            maker = next((m for first, stop, m in layers if first <= index < stop), None)
            image = maker(index) if maker is not None else np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
