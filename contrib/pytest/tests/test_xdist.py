"""pytest-xdist: -n 2 gives the outcomes and the cache hits of a serial run."""

from conftest import GRAPH_IDS, OUTCOMES_PASSING

DOCTEST = "--doctest-modules"


def test_xdist_warm_after_serial_cold(outcomes_project):
    tc = outcomes_project
    cold = tc.run(DOCTEST)
    serial_warm_ran = cold.ran_counts.copy()
    for nodeid in OUTCOMES_PASSING:
        del serial_warm_ran[nodeid]
    warm = tc.run(DOCTEST, "-n", "2")
    assert warm.ret == cold.ret, warm
    assert warm.outcomes == cold.outcomes, warm
    assert warm.status_set() == cold.status_set(), warm
    assert warm.cached == OUTCOMES_PASSING, warm
    assert warm.summary_cached == len(OUTCOMES_PASSING), warm
    assert warm.ran_counts == serial_warm_ran, warm


def test_xdist_cold_is_plain(outcomes_project):
    tc = outcomes_project
    plain = tc.plain(DOCTEST, "-n", "2")
    cold = tc.run(DOCTEST, "-n", "2")
    assert cold.ret == plain.ret, cold
    assert cold.outcomes == plain.outcomes, cold
    assert cold.status_set() == plain.status_set(), cold
    assert cold.ran_counts == plain.ran_counts, cold
    assert cold.cached == set(), cold
    # What the workers recorded is what a serial run looks up.
    serial = tc.run(DOCTEST)
    assert serial.cached == OUTCOMES_PASSING, serial


def test_xdist_edit_runs_only_the_affected_module(graph_project):
    tc = graph_project
    cold = tc.run()
    assert cold.ran == GRAPH_IDS, cold
    warm = tc.run("-n", "2")
    assert warm.outcomes == {"passed": len(GRAPH_IDS)}, warm
    assert warm.ran == set() and warm.cached == GRAPH_IDS, warm
    tc.edit("pkg/d.py", "def fd", "X = 4\n\n\ndef fd")
    direct = {"tests/test_direct.py::test_d1", "tests/test_direct.py::test_d2"}
    r = tc.run("-n", "2")
    assert r.outcomes == {"passed": len(GRAPH_IDS)}, r
    assert r.ran == direct, r
    assert r.cached == GRAPH_IDS - direct, r
    r = tc.run()
    assert r.ran == set() and r.cached == GRAPH_IDS, r
