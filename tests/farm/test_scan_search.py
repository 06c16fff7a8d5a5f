from farm.scan import next_search_rate


def test_search_doubles_until_a_failure_then_bisects_geometrically():
    assert next_search_rate(None, None, 2000.0) == 2000.0
    assert next_search_rate(100.0, None, 2000.0) == 200.0
    assert next_search_rate(1500.0, None, 2000.0) == 2000.0
    assert next_search_rate(None, 400.0, 2000.0) == 200.0
    r = next_search_rate(100.0, 400.0, 2000.0)
    assert 100.0 < r < 400.0 and abs(r - 200.0) < 1e-9
