"""The fair pop, quotas and the token bucket on a real Redis (no workers): the order is proven exactly."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from videoapi.domain.fairness import FairQueue, Quotas, RateLimiter
from videoapi.domain.jobs import JobStore
from videoapi.errors import Refusal


@pytest.fixture
def store(redis_url) -> JobStore:
    base = redis_url.rsplit("/", 1)[0]
    store = JobStore.from_url(f"{base}/13")
    store.redis.flushdb()
    return store


@pytest.fixture
def fair(store) -> FairQueue:
    return FairQueue(store.redis)


def drain(fair: FairQueue, prefix: str = "t") -> list[str]:
    order, n = [], 0
    while (popped := fair.pop(f"{prefix}{n}")) is not None:
        order.append(popped.job_id)
        n += 1
    return order


def test_a_single_job_behind_a_burst_of_40_is_popped_second(fair):
    for i in range(40):
        fair.push("a", f"a{i}")
    assert fair.pop("t-first").job_id == "a0"  # a worker took A's first job before B came
    fair.push("b", "b0")
    order = drain(fair)
    assert order.index("b0") <= 1
    assert sorted(order) == sorted([f"a{i}" for i in range(1, 40)] + ["b0"])


def test_three_clients_of_30_jobs_take_turns(fair):
    for i in range(30):  # submitted at once: A's 30, then B's, then C's
        for client in "abc":
            fair.push(client, f"{client}{i}")
    order = drain(fair)
    assert len(order) == 90 and len(set(order)) == 90
    for k in range(0, 90, 3):  # every round of three pops serves each client once
        assert sorted(j[0] for j in order[k : k + 3]) == ["a", "b", "c"]
    medians = {c: statistics.median(i for i, j in enumerate(order) if j[0] == c) for c in "abc"}
    assert max(medians.values()) - min(medians.values()) <= 2


def test_a_client_alone_gets_every_pop_in_its_order(fair):
    for i in range(10):
        fair.push("solo", f"s{i}")
    assert drain(fair) == [f"s{i}" for i in range(10)]


def test_weights_share_pops_in_proportion(fair):
    for i in range(30):
        fair.push("big", f"big{i}", weight=2)
        fair.push("small", f"small{i}", weight=1)
    first = drain(fair)[:30]
    counts = Counter(j.rstrip("0123456789") for j in first)
    assert counts == {"big": 20, "small": 10}


def test_an_idle_client_banks_no_credit(fair):
    for i in range(20):
        fair.push("a", f"a{i}")
    for n in range(10):  # A alone for 10 pops: B, idle meanwhile, earns nothing for it
        fair.pop(f"early{n}")
    for i in range(10):
        fair.push("b", f"b{i}")
    order = drain(fair)[:10]
    assert Counter(j[0] for j in order) == {"a": 5, "b": 5}


def test_a_client_that_goes_idle_and_returns_starts_at_the_clock(fair):
    fair.push("a", "a0")
    fair.pop("x0")  # A's only job: A goes idle with vtime 1
    for i in range(6):
        fair.push("b", f"b{i}")
    for n in range(4):
        fair.pop(f"x{n + 1}")
    for i in range(1, 4):  # A comes back: it starts at the clock, not at the vtime it left with (1)
        fair.push("a", f"a{i}")
    order = [j[0] for j in drain(fair)]
    assert sorted(order) == ["a", "a", "a", "b", "b"]
    assert "b" in order[:3]  # were A to start at 1, its three jobs would all go before B's (at 4)


def test_interactive_jobs_of_a_client_go_before_its_batch_jobs(fair):
    fair.push("a", "batch1", priority="batch")
    fair.push("a", "batch2", priority="batch")
    fair.push("a", "now1")
    fair.push("b", "b1", priority="batch")
    fair.push("a", "now2", priority="interactive")
    order = drain(fair)
    a_jobs = [j for j in order if j != "b1"]
    assert a_jobs == ["now1", "now2", "batch1", "batch2"]
    assert order.index("b1") <= 1  # another client's batch job is not behind this client's interactive ones
    with pytest.raises(ValueError):
        fair.push("a", "x", priority="urgent")


def test_a_token_delivered_again_gets_the_same_job_and_none_is_lost(fair):
    for i in range(5):
        fair.push("a", f"a{i}")
        fair.push("b", f"b{i}")
    first = fair.pop("token-1")
    assert fair.pop("token-1").job_id == first.job_id  # the reaper or a retry re-sent this token
    assert fair.claimed("token-1") == first.job_id
    rest = drain(fair, "other")
    assert sorted([first.job_id, *rest]) == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
    assert fair.pop("one-too-many") is None  # a token with no job behind it


def test_split_jobs_segments_count_to_their_client(fair):
    for i in range(10):
        fair.push("a", f"a{i}")
        fair.push("b", f"b{i}")
    assert fair.pop("t0").job_id == "a0"  # A's job turns out to be split into 4 segments
    fair.charge("a", 3)
    order = drain(fair, "d")[:5]
    assert [j[0] for j in order] == ["b", "b", "b", "b", "a"]


def test_quota_counts_active_jobs_and_a_finished_one_frees_its_place(store):
    quotas = Quotas(store.redis)
    jobs = [store.create(bucket="b", key="k", threshold=0.5, client_id="q") for _ in range(6)]
    for job in jobs[:5]:
        quotas.reserve("q", job.id, 5)
    with pytest.raises(Refusal) as refused:
        quotas.reserve("q", jobs[5].id, 5)
    assert (refused.value.code, refused.value.limit, refused.value.count) == ("quota_exceeded", 5, 5)
    quotas.reserve("other", jobs[5].id, 5)  # another client's quota is its own
    store.start(jobs[0].id, 10)
    assert quotas.active("q") == 5  # running still counts
    store.succeed(jobs[0].id, "results/x.json")
    assert quotas.active("q") == 4
    store.cancel(jobs[1].id)
    assert quotas.active("q") == 3
    quotas.reserve("q", "job_next", 5)


def test_token_bucket_allows_a_burst_then_refuses_with_retry_after(store):
    limiter = RateLimiter(store.redis)
    decisions = [limiter.take("key-a", 5) for _ in range(50)]
    allowed = [d for d in decisions if d.allowed]
    refused = [d for d in decisions if not d.allowed]
    assert 10 <= len(allowed) <= 12  # the burst of 10, and what refilled at 5/s while these ran
    assert refused and all(d.retry_after_s >= 1 and d.headers()["Retry-After"] for d in refused)
    assert decisions[0].headers()["RateLimit-Limit"] == "10" and decisions[0].remaining == 9
    assert "Retry-After" not in decisions[0].headers()
    assert limiter.take("key-b", 5).allowed  # another key's bucket is untouched
    assert limiter.take("key-a", 0) is None  # 0: no limit


def test_the_backlog_counts_every_clients_queued_jobs_until_they_are_popped(fair):
    # the decoder split's tail rule reads it: jobs queued and not yet taken, over clients and priorities
    assert fair.backlog() == 0
    for i in range(5):
        fair.push("a", f"a{i}")
    for i in range(3):
        fair.push("b", f"b{i}", priority="batch")
    fair.push("b", "b-now")
    assert fair.backlog() == 9
    popped = [fair.pop(f"t{n}").job_id for n in range(4)]
    assert fair.backlog() == 5
    fair.withdraw("a", "a4")
    assert fair.backlog() == 4
    assert len(drain(fair, "u")) == 4 and fair.backlog() == 0
    assert len(set(popped)) == 4
