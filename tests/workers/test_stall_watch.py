"""The consumer watchdog's decision: a stall is work waiting, a slot free and nothing taken for stall_s."""

from __future__ import annotations

from workers.consumer_watchdog import StallWatch


def test_work_waiting_with_a_free_slot_and_nothing_taken_is_a_stall_once_stall_s_has_passed():
    watch = StallWatch(30)
    assert [watch.observe(t, waiting=3, free_slot=True, received=7) for t in (0, 10, 20, 29.9)] == [False] * 4
    assert watch.observe(30, waiting=3, free_slot=True, received=7)
    assert not watch.observe(31, waiting=3, free_slot=True, received=7)  # one restart; a new window begins
    assert watch.observe(61, waiting=3, free_slot=True, received=7)


def test_a_task_taken_an_empty_queue_or_a_full_worker_starts_the_window_again():
    watch = StallWatch(30)
    watch.observe(0, waiting=3, free_slot=True, received=7)
    assert not watch.observe(25, waiting=3, free_slot=True, received=8)  # it took one: not deaf
    assert not watch.observe(50, waiting=3, free_slot=True, received=8)  # 25 s since, not 30
    assert not watch.observe(56, waiting=0, free_slot=True, received=8)  # the others took them
    assert not watch.observe(60, waiting=3, free_slot=True, received=8)
    assert not watch.observe(80, waiting=3, free_slot=False, received=8)  # busy: nothing it could take
    assert not watch.observe(100, waiting=3, free_slot=True, received=8)
    assert watch.observe(130, waiting=3, free_slot=True, received=8)
