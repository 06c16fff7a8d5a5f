from farm.scan import next_search_rate


def test_search_doubles_until_a_failure_then_bisects_geometrically():
    assert next_search_rate(None, None, 2000.0) == 2000.0
    assert next_search_rate(100.0, None, 2000.0) == 200.0
    assert next_search_rate(1500.0, None, 2000.0) == 2000.0
    assert next_search_rate(None, 400.0, 2000.0) == 200.0
    r = next_search_rate(100.0, 400.0, 2000.0)
    assert 100.0 < r < 400.0 and abs(r - 200.0) < 1e-9


def farm_with_capacity(capacity_hz: float, disturbed: set[int] = frozenset()):
    """A fake measurement: sustained below the capacity, except on the calls listed as disturbed."""
    calls: list[tuple[float, int, bool]] = []

    def sustained(rate: float, index: int, again: bool) -> bool:
        calls.append((rate, index, again))
        return rate <= capacity_hz and len(calls) - 1 not in disturbed

    return sustained, calls


def test_search_finds_a_rate_within_the_capacity_and_close_to_it():
    from farm.scan import search_saturation

    for capacity in (15.0, 47.0, 130.0, 900.0):
        sustained, calls = farm_with_capacity(capacity)
        found = search_saturation(sustained, 8, 10.0, 1000.0)
        assert found is not None and found <= capacity
        assert found > 0.6 * capacity
        assert len(calls) == 8 and not any(again for _, _, again in calls)


def test_a_disturbed_first_point_is_measured_again_and_the_search_goes_on():
    from farm.scan import search_saturation

    sustained, calls = farm_with_capacity(60.0, disturbed={0})
    found = search_saturation(sustained, 6, 10.0, 1000.0)
    assert calls[0] == (10.0, 0, False) and calls[1] == (10.0, 0, True)
    assert found is not None and 10.0 < found <= 60.0


def test_a_farm_that_cannot_sustain_the_lowest_rate_stops_after_the_repeat():
    from farm.scan import search_saturation

    sustained, calls = farm_with_capacity(5.0)
    assert search_saturation(sustained, 6, 10.0, 1000.0) is None
    assert calls == [(10.0, 0, False), (10.0, 0, True)]
