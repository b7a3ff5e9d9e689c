"""ServerClock keeps the offset of the measurement with the shortest round trip."""

from __future__ import annotations

from bananas.core.clock import ServerClock


class FixedClock:
    def __init__(self, value: float) -> None:
        self.value = value

    def now(self) -> float:
        return self.value


def test_offset_from_the_shortest_round_trip() -> None:
    host = FixedClock(1000.0)
    clock = ServerClock(host, refresh_interval=30)
    assert clock.now() == 1000.0 and clock.needs_measuring()
    # (sent, server, received): the second sample has the shortest round trip.
    clock.record([(1000.0, 1300.9, 1002.0), (1000.0, 1300.05, 1000.1), (1000.0, 1299.0, 1001.0)])
    assert abs(clock.offset - 300.0) < 1e-9
    assert abs(clock.round_trip - 0.1) < 1e-9  # type: ignore[operator]
    assert abs(clock.now() - 1300.0) < 1e-9
    host.value = 1029.0
    assert not clock.needs_measuring()
    host.value = 1030.2
    assert clock.needs_measuring()


def test_a_failed_measurement_keeps_the_offset_and_waits() -> None:
    host = FixedClock(50.0)
    clock = ServerClock(host, refresh_interval=10)
    clock.record([(50.0, 40.0, 50.0)])
    host.value = 70.0
    clock.failed()
    assert clock.offset == -10.0 and not clock.needs_measuring()
