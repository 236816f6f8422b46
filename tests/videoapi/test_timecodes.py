"""OpenTimelineIO's `opentime` timecodes against the hand-written SMPTE code they replace."""

import pytest
from opentimelineio import opentime

from videoapi.pipeline.shots import smpte_timecode, timecode_frames, timecode_rate


def hand_written_smpte_timecode(frame: int, fps: float) -> str:
    """The service's own SMPTE code before opentime replaced it, kept here as the oracle."""
    nominal = max(1, round(fps))
    drop = abs(fps * 1001 / 1000 - nominal) < 0.01 and nominal in (30, 60)
    if drop:
        dropped = nominal // 15
        per_10min = nominal * 600 - dropped * 9
        per_min = nominal * 60 - dropped
        tens, rest = divmod(frame, per_10min)
        extra = dropped * 9 * tens + (dropped * ((rest - dropped) // per_min) if rest > dropped else 0)
        frame += extra
    ff = frame % nominal
    total_s = frame // nominal
    return f"{total_s // 3600:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}{';' if drop else ':'}{ff:02d}"


RATES = {"23.976": 24000 / 1001, "25": 25.0, "29.97 DF": 30000 / 1001, "59.94 DF": 60000 / 1001}


@pytest.mark.parametrize("rate", RATES.values(), ids=RATES.keys())
def test_opentime_equals_the_hand_written_timecodes(rate):
    # every frame of the first 12 minutes (a whole ten-minute drop-frame cycle and its edges), then a sweep to
    # just under 24 h (SMPTE timecode wraps there, and the service caps videos at a few hours)
    frames = [*range(0, 12 * 60 * 61), *range(12 * 60 * 61, int(23.99 * 3600 * rate), 997)]
    for frame in frames:
        expected = hand_written_smpte_timecode(frame, rate)
        assert opentime.to_timecode(opentime.RationalTime(frame, rate), rate) == expected, frame
        assert smpte_timecode(frame, rate) == expected, frame
        # and back: the timecode names that very frame
        assert opentime.from_timecode(expected, rate).to_frames() == frame


@pytest.mark.parametrize("rate", [23.976, 29.97, 59.94])
def test_rounded_rates_from_containers_give_the_same_timecodes(rate):
    exact = {23.976: 24000 / 1001, 29.97: 30000 / 1001, 59.94: 60000 / 1001}[rate]
    for frame in range(0, 200_000, 13):
        assert smpte_timecode(frame, rate) == smpte_timecode(frame, exact) == hand_written_smpte_timecode(frame, rate)


def test_start_timecode_offsets_and_bad_ones_are_refused():
    assert smpte_timecode(0, 25, "01:00:00:00") == "01:00:00:00"
    assert smpte_timecode(1800, 30000 / 1001, "01:00:00;00") == "01:01:00;02"
    assert timecode_frames("01:00:00:00", 25) == 90_000
    for bad in ("1:00", "01:00:00:25", "24:00:00:00", "01:00:00;00", "x"):
        with pytest.raises(ValueError):
            timecode_frames(bad, 25)


def test_rates_smpte_does_not_define_count_non_drop_at_the_whole_rate():
    assert timecode_rate(15) is None and timecode_rate(23.976) == pytest.approx(24000 / 1001)
    assert smpte_timecode(15, 15) == "00:00:01:00"
    assert smpte_timecode(20, 15, "01:00:00:00") == "01:00:01:05"
    with pytest.raises(ValueError):
        timecode_frames("00:00:00:15", 15)
