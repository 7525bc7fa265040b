"""The credential-guessing throttle (registry.auth.FailureThrottle), on an injected clock.

Issue 12: a success reset the failure count of the whole address, so a guesser interleaving
a login it knew got ~4 checked guesses a second at any other identity.
"""

from __future__ import annotations

import pytest

from registry.auth import FailureThrottle, parse_identity
from registry.authz import Principal
from registry.errors import AuthenticationFailed, Throttled
from registry.model.admin import AdminRef

NODE = parse_identity("300:0.NA/88.118")
ENT8 = parse_identity("300:0.NA/88.118.8")
A, B = "192.0.2.1", "192.0.2.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(t: FailureThrottle, address: str, who: AdminRef | None, times: int = 1) -> None:
    """``times`` attempts, each let through, that fail."""
    for _ in range(times):
        assert t.retry_after(address, who) == 0
        t.failed(address, who)


def test_backs_off_exponentially_after_the_free_failures_up_to_the_cap() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock, free=2, base=1.0, cap=8.0, forget=100.0)
    fail(t, A, NODE, 2)  # the free ones
    assert t.retry_after(A, NODE) == pytest.approx(1.0)
    clock.now += 1.0
    fail(t, A, NODE)
    assert t.retry_after(A, NODE) == pytest.approx(2.0)
    for _ in range(6):
        clock.now += t.retry_after(A, NODE)
        fail(t, A, NODE)
    assert t.retry_after(A, NODE) == pytest.approx(8.0)  # capped
    assert t.retry_after(B, NODE) == 0  # another address: its own pair, under the handle's
    assert t.retry_after(A, ENT8) == 0  # another identity: its own pair


def test_another_identitys_success_does_not_reset_the_count() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock)
    for _ in range(t.free):
        fail(t, A, NODE)
        assert t.retry_after(A, ENT8) == 0
        t.succeeded(A, ENT8)  # a login the guesser knows, interleaved
    assert t.retry_after(A, NODE) == pytest.approx(1.0)
    assert t.retry_after(A, ENT8) == 0


def test_a_success_clears_only_its_own_pair() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock, identity_free=10)
    fail(t, B, NODE, 5)  # a guesser elsewhere
    fail(t, A, NODE, 4)  # the owner mistyping...
    t.succeeded(A, NODE)  # ...then logging in: its own pair is cleared,
    assert t.retry_after(A, NODE) == 0
    assert t.retry_after(B, NODE) == pytest.approx(1.0)  # not another address's,
    # and the 9 failures at the handle stay: one more throttles it.
    fail(t, "198.51.100.7", NODE)
    assert t.retry_after("198.51.100.8", NODE) == pytest.approx(1.0)


def test_guesses_from_many_addresses_at_one_identity_are_throttled() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock)
    for n in range(t.identity_free):
        fail(t, f"198.51.100.{n}", NODE)
    assert t.retry_after("203.0.113.9", NODE) == pytest.approx(1.0)  # a fresh address too
    assert t.retry_after("203.0.113.9", ENT8) == 0


def test_every_index_and_spelling_of_a_handle_is_one_target() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock)
    for text in ["300:0.NA/88.118", "0:0.na/88.118", "301:0.Na/88.118", "0.NA/88.118"]:
        fail(t, A, parse_identity(text))
    fail(t, A, NODE)
    assert t.retry_after(A, parse_identity("7:0.na/88.118")) == pytest.approx(1.0)


def test_one_address_trying_many_identities_is_throttled() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock)
    for n in range(t.address_free):
        fail(t, A, parse_identity(f"300:0.NA/88.118.{n}"))
    assert t.retry_after(A, parse_identity("300:0.NA/88.118.999")) == pytest.approx(1.0)
    assert t.retry_after(A, None) == pytest.approx(1.0)  # credentials naming nobody
    assert t.retry_after(B, parse_identity("300:0.NA/88.118.999")) == 0


def test_an_ipv6_host_counts_as_its_slash_64() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock)
    fail(t, "2001:db8:1:2::1", NODE, 3)
    fail(t, "2001:db8:1:2:ffff::9", NODE, 2)
    assert t.retry_after("2001:db8:1:2::77", NODE) == pytest.approx(1.0)
    assert t.retry_after("2001:db8:1:3::1", NODE) == 0  # another /64
    fail(t, "::ffff:192.0.2.1", ENT8, 5)  # an IPv4 client on a dual-stack socket
    assert t.retry_after(A, ENT8) == pytest.approx(1.0)


def test_counters_are_forgotten_after_a_quiet_while() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock, cap=300.0, forget=3600.0)
    fail(t, A, NODE, 5)
    clock.now += 3599.0
    assert t.retry_after(A, NODE) == 0  # waited out, not forgotten: the next failure...
    fail(t, A, NODE)
    assert t.retry_after(A, NODE) == pytest.approx(2.0)  # ...doubles the delay
    clock.now += 3600.0
    fail(t, A, NODE, 5)  # forgotten: free again
    assert t.retry_after(A, NODE) == pytest.approx(1.0)


def test_forgetting_sooner_than_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="forget"):
        FailureThrottle(cap=300.0, forget=60.0)


def test_memory_stays_bounded() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock, max_entries=50, address_free=10**9)
    for n in range(1000):
        fail(t, A, parse_identity(f"300:0.NA/88.118.{n}"))
        assert len(t._fails) <= 50
    fail(t, B, NODE, 5)  # the newest counters are the ones kept
    assert t.retry_after(B, NODE) == pytest.approx(1.0)


def test_a_huge_count_does_not_overflow_the_delay() -> None:
    clock = Clock()
    t = FailureThrottle(clock=clock, identity_free=10**9, address_free=10**9)
    t._fails[("pair", A, "0.NA/88.118")] = (5000, clock.now)
    assert t.retry_after(A, NODE) == pytest.approx(t.cap)


async def test_an_attempt_is_judged_and_counted_whichever_protocol_proves_it() -> None:
    """FailureThrottle.attempt, as HTTP Basic and the native challenge-response use it: the
    proof is not even asked for while the attempt must wait, and each outcome is counted."""
    clock = Clock()
    t = FailureThrottle(clock=clock, free=1, forget=600.0)
    asked: list[AdminRef] = []

    async def wrong(who: AdminRef) -> Principal:
        asked.append(who)
        raise AuthenticationFailed()

    async def right(who: AdminRef) -> Principal:
        asked.append(who)
        return Principal(who)

    with pytest.raises(AuthenticationFailed):
        await t.attempt(A, NODE, wrong)
    with pytest.raises(Throttled) as caught:
        await t.attempt(A, NODE, right)
    assert caught.value.retry_after == 1 and asked == [NODE]  # refused before the proof
    clock.now += 1.0
    assert (await t.attempt(A, NODE, right)).identity == NODE
    assert t.retry_after(A, NODE) == 0  # the pair's success cleared its count
    # Credentials that name nobody: a failure, counted against the address, never proved.
    t = FailureThrottle(clock=clock, address_free=1)
    with pytest.raises(AuthenticationFailed):
        await t.attempt(B, None, right)
    assert asked == [NODE, NODE] and t.retry_after(B, ENT8) == pytest.approx(1.0)
