"""Real H.264 test videos with exact ground truth: textured shots joined by hard cuts.

Used by the tests and benchmarks (the encoder is FFmpeg's libx264 inside PyAV).

Over 300 lines because each generator (cuts, dissolves, fades, broadcast bars and slugs, VFR) is a few lines
of test-video knowledge that the tests and benchmarks share.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import OutputContainer


def _shot_frames(rng: np.random.Generator, length: int, width: int, height: int) -> Iterator[NDArray[np.uint8]]:
    """A moving texture in a colour of its own: the camera pans slowly over it."""
    base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    tint = rng.integers(40, 216, 3)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8)).astype(np.int16)
    big = np.clip((big + tint) // 2, 0, 255).astype(np.uint8)
    for t in range(length):
        dx, dy = t % 8, (t // 2) % 8
        yield np.ascontiguousarray(big[dy : dy + height, dx : dx + width])


def write_video(
    path: Path,
    shot_lengths: list[int],
    *,
    fps: int | Fraction = 25,
    width: int = 320,
    height: int = 180,
    seed: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    frame_durations_ms: list[int] | None = None,
    start_ms: int = 0,
    audio: bool = False,
    rotation: int = 0,
    sample_aspect_ratio: Fraction | None = None,
) -> list[int]:
    """Write a video of consecutive shots; return the first frame of every shot after the first (the cuts).

    `frame_durations_ms` (cycled) makes a variable frame rate; `start_ms` puts the first frame later than 0
    (an edit list in MP4, a start offset in a transport stream); `audio` adds an AAC tone; `rotation` tags a
    display matrix (degrees counterclockwise); `sample_aspect_ratio` makes it anamorphic.
    """
    import av

    rng = np.random.default_rng(seed)
    timed = bool(frame_durations_ms) or start_ms > 0
    with av.open(str(path), "w", format=container_format, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        assert isinstance(stream, av.VideoStream)  # `codec` names a video codec
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options is not None:
            stream.options = cast(dict[str, object], options)  # PyAV's stub: dict[str, object], which is invariant
        else:
            stream.options = {"preset": "ultrafast", "crf": "20"} if codec == "libx264" else {}
        if timed:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        if sample_aspect_ratio:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        sound = container.add_stream("aac", rate=44100) if audio else None
        pts, sample = start_ms, 0
        for i, rgb in enumerate(_frames_of_shots(rng, shot_lengths, width, height)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if timed:
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
                pts += frame_durations_ms[i % len(frame_durations_ms)] if frame_durations_ms else round(1000 / fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            while sound is not None and sample < (i + 1) / float(fps) * 44100:
                sample = _mux_tone(container, sound, sample)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            for packet in sound.encode():
                container.mux(packet)
    return list(np.cumsum(shot_lengths)[:-1].astype(int))


def _frames_of_shots(
    rng: np.random.Generator, shot_lengths: list[int], width: int, height: int
) -> Iterator[NDArray[np.uint8]]:
    for length in shot_lengths:
        yield from _shot_frames(rng, length, width, height)


def _mux_tone(container: OutputContainer, sound: AudioStream, sample: int, chunk: int = 1024) -> int:
    """Encode and mux one chunk of a 440 Hz tone from `sample` on; returns the next sample."""
    import av

    tone = (np.sin((sample + np.arange(chunk)) * 2 * np.pi * 440 / 44100) * 0.2).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 44100, sample
    for packet in sound.encode(frame):
        container.mux(packet)
    return sample + chunk


def write_audio_only(path: Path, seconds: float = 1.0) -> None:
    """An M4A-style MP4 holding only an AAC stream."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        samples = int(44100 * seconds)
        tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / 44100) * 0.2).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = tone[start : start + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_variable_frame_rate(path: Path, frames: int = 120, width: int = 160, height: int = 90) -> None:
    """H.264 whose frame intervals alternate between 1/50 s and 1/10 s."""
    import av

    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast"}
        pts = 0
        for i, rgb in enumerate(_shot_frames(rng, frames, width, height)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += 20 if i % 2 else 100
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_zero_frames(path: Path) -> None:
    """What an encoder leaves when it gets no frames: an MP4 with headers and no video in it."""
    import subprocess

    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=64x64:r=25:d=1",
            "-frames:v",
            "0",
            "-c:v",
            "libx264",
            "-f",
            "mp4",
            str(path),
        ],
        check=True,
    )


def write_faststart_truncated(path: Path, keep: float = 0.5) -> None:
    """An MP4 with its index first (faststart) and the end of its frames cut off: it opens, then runs dry."""
    import av

    full = path.with_suffix(".full.mp4")
    rng = np.random.default_rng(2)
    with av.open(str(full), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for rgb in _shot_frames(rng, 200, 160, 90):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: int(len(data) * keep)])


def write_one_pixel(path: Path, frames: int = 10) -> None:
    """A real 1x1 video (FFV1 in Matroska: x264 needs even sizes)."""
    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "yuv420p"
        for i in range(frames):
            rgb = np.full((1, 1, 3), i * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_huge_declared(path: Path, side: int = 16000) -> None:
    """A Motion-JPEG MP4 whose frames claim side x side pixels (decoding would allocate ~side² x 1.5 bytes each)."""
    import struct

    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuvj420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuvj420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(path.read_bytes())
    entry = data.find(b"mp4v", data.find(b"stsd"))  # the sample entry's width and height, 28 bytes on
    data[entry + 28 : entry + 32] = struct.pack(">HH", side, side)
    at = data.find(b"\xff\xc0")  # every JPEG's start-of-frame: length(2) precision(1) height(2) width(2)
    while at >= 0:
        data[at + 5 : at + 9] = struct.pack(">HH", side, side)
        at = data.find(b"\xff\xc0", at + 2)
    path.write_bytes(bytes(data))


def write_zero_timescale(path: Path) -> None:
    """An H.264 MP4 whose track declares a time scale of 0 ticks a second: no frame rate at all."""
    import struct

    write_video(path, [30])
    data = bytearray(path.read_bytes())
    at = data.find(b"mdhd") + 4  # version(1) flags(3) creation(4) modification(4) timescale(4)
    data[at + 12 : at + 16] = struct.pack(">I", 0)
    path.write_bytes(bytes(data))


def write_ten_hours_declared(path: Path, hours: float = 10.0) -> None:
    """A short Matroska video whose header declares it lasts `hours` (the Segment Duration is a lie)."""
    import struct

    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for rgb in _shot_frames(np.random.default_rng(4), 30, 64, 64):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # EBML Duration, an 8-byte float in TimestampScale units (1 ms)
    data[at + 3 : at + 11] = struct.pack(">d", hours * 3600 * 1000)
    path.write_bytes(bytes(data))


def write_zip_bomb(path: Path, inflated_bytes: int = 256 * 1024**2) -> None:
    """A zip archive that inflates to `inflated_bytes` of zeros, under a video's name."""
    import io
    import zipfile

    buffer = io.BytesIO()
    chunk = bytes(1024**2)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("movie.mp4", "w", force_zip64=True) as member:
            for _ in range(inflated_bytes // len(chunk)):
                member.write(chunk)
    path.write_bytes(buffer.getvalue())


def tone(
    seconds: float, rate: int = 48000, level_db: float = -20.0, hz: float = 1000.0, start: int = 0
) -> NDArray[np.float32]:
    """A sine at `level_db` dBFS peak (RMS 3 dB lower), mono float samples; `start` continues its phase."""
    at = start + np.arange(int(round(seconds * rate)))
    samples: NDArray[np.float32] = (np.sin(at * 2 * np.pi * hz / rate) * 10 ** (level_db / 20)).astype(np.float32)
    return samples


def write_pictures(
    path: Path,
    pictures: Iterable[NDArray[Any]],
    *,
    fps: int = 25,
    sound: NDArray[Any] | None = None,
    sample_rate: int = 48000,
    audio_codec: str = "aac",
    layout: str = "stereo",
    crf: str = "18",
) -> None:
    """H.264 of the given RGB pictures, with `sound` (mono float samples, from time 0, copied to every channel of
    `layout`) muxed alongside as `audio_codec` (aac, pcm_s16le in .mov/.mkv, ...); None: no audio stream."""
    import av

    pictures = list(pictures)
    height, width = pictures[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": crf}
        audio: AudioStream | None = None
        if sound is not None:  # `audio_codec` names an audio codec
            audio = cast("AudioStream", container.add_stream(audio_codec, rate=sample_rate, layout=layout))
            audio.codec_context.layout = layout
        channels = 1 if layout == "mono" else 2
        audio_format = "fltp" if audio_codec == "aac" else "s16"
        sample, chunk = 0, 1024
        for index, rgb in enumerate(pictures):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
            while (
                audio is not None and sound is not None and sample < min(len(sound), (index + 1) * sample_rate // fps)
            ):
                piece = np.tile(sound[sample : sample + chunk], (channels, 1))
                if audio_format == "s16":
                    piece = (np.clip(piece, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format=audio_format, layout=layout)
                frame.sample_rate, frame.pts = sample_rate, sample
                for packet in audio.encode(frame):
                    container.mux(packet)
                sample += chunk
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            for packet in audio.encode():
                container.mux(packet)
