"""A cold run is plain pytest; a warm run skips exactly the passing tests."""

import xml.etree.ElementTree as ET

from conftest import OUTCOMES_PASSING

DOCTEST = "--doctest-modules"


def test_cold_run_is_plain_pytest(outcomes_project):
    tc = outcomes_project
    plain = tc.plain(DOCTEST)
    cold = tc.run(DOCTEST)
    # The project really has every kind of outcome.
    assert plain.outcomes == {"passed": 8, "failed": 6, "skipped": 3,
                              "xfailed": 1, "xpassed": 1, "errors": 2}, plain
    assert cold.ret == plain.ret == 1, cold
    assert cold.outcomes == plain.outcomes, cold
    assert cold.status_set() == plain.status_set(), cold
    assert cold.ran_counts == plain.ran_counts, cold
    assert cold.cached == set() and cold.summary_cached == 0, cold
    assert "cached" not in cold.result.outlines[-1], cold


def test_warm_run_skips_only_passes(outcomes_project):
    tc = outcomes_project
    cold = tc.run(DOCTEST)
    warm = tc.run(DOCTEST)
    assert warm.ret == cold.ret, warm
    assert warm.outcomes == cold.outcomes, warm
    assert warm.status_set() == cold.status_set(), warm
    assert warm.cached == OUTCOMES_PASSING, warm
    assert warm.summary_cached == len(OUTCOMES_PASSING), warm
    # Failures, errors (setup and teardown), skips and xfails ran again,
    # exactly as often as on the cold run.
    expect = cold.ran_counts.copy()
    for nodeid in OUTCOMES_PASSING:
        del expect[nodeid]
    assert warm.ran_counts == expect, warm
    for nodeid in ("test_outcomes.py::test_fail",
                   "test_outcomes.py::test_setup_error",
                   "test_outcomes.py::test_teardown_error",
                   "test_outcomes.py::test_skip",
                   "test_outcomes.py::test_xfail",
                   "test_outcomes.py::test_xpass",
                   "test_outcomes.py::test_xpass_strict",
                   "test_outcomes.py::test_param[3]",
                   "test_outcomes.py::TestUnit::test_u_fail",
                   "mod.py::mod.bad"):
        assert nodeid in warm.ran, (nodeid, warm)
    # A third run is the same again: nothing drifts.
    third = tc.run(DOCTEST)
    assert third.ran_counts == expect, third
    assert third.cached == OUTCOMES_PASSING, third


def test_failure_always_reruns_until_fixed(tc):
    tc.write({"pytest.ini": "[pytest]\n", "test_f.py": """\
        from ranlog import ran

        FIXED = False

        def test_f():
            ran()
            assert FIXED

        def test_ok():
            ran()
        """})
    r = tc.run()
    assert r.ran == {"test_f.py::test_f", "test_f.py::test_ok"}, r
    for _ in range(2):
        r = tc.run()
        assert r.ran == {"test_f.py::test_f"}, r
        assert r.outcomes == {"failed": 1, "passed": 1}, r
        assert r.cached == {"test_f.py::test_ok"}, r
    tc.edit("test_f.py", "FIXED = False", "FIXED = True")
    r = tc.run()
    assert r.ran == {"test_f.py::test_f", "test_f.py::test_ok"}, r
    assert r.outcomes == {"passed": 2}, r
    r = tc.run()
    assert r.ran == set() and r.cached == {"test_f.py::test_f",
                                           "test_f.py::test_ok"}, r


def test_junitxml_lists_cached_tests_as_passed(outcomes_project):
    tc = outcomes_project
    plain = tc.plain(DOCTEST, "--junitxml=plain.xml")
    tc.run(DOCTEST)
    warm = tc.run(DOCTEST, "--junitxml=warm.xml")
    assert warm.cached == OUTCOMES_PASSING, warm

    def cases(name):
        tree = ET.parse(str(tc.root / name))
        out = {}
        for case in tree.iter("testcase"):
            ident = (case.get("classname"), case.get("name"))
            kinds = sorted(child.tag for child in case
                           if child.tag in ("failure", "error", "skipped"))
            out.setdefault(ident, []).extend(kinds)
        suite = next(tree.iter("testsuite"))
        totals = {k: suite.get(k) for k in ("tests", "failures", "errors",
                                              "skipped")}
        return out, totals

    plain_cases, plain_totals = cases("plain.xml")
    warm_cases, warm_totals = cases("warm.xml")
    assert warm_cases == plain_cases
    assert warm_totals == plain_totals
    for ident in (("test_outcomes", "test_pass"),
                  ("test_outcomes.TestClass", "test_m"),
                  ("test_outcomes.TestUnit", "test_u"),
                  ("test_outcomes", "test_param[1]")):
        assert warm_cases[ident] == [], ident
    assert len(plain_cases) > len(OUTCOMES_PASSING), plain


def test_short_summary_names_cached_passes(tc):
    """-rA lists every test in the short summary; a cached pass is a line
    "PASSED <nodeid>" like any other pass, not a Python repr."""
    tc.write({"pytest.ini": "[pytest]\n", "test_s.py": """\
        def test_s():
            pass
        """})
    plain = tc.plain("-rA")
    tc.run("-rA")
    warm = tc.run("-rA")
    assert warm.cached == {"test_s.py::test_s"}, warm
    plain_line = [ln for ln in plain.result.outlines
                  if ln.endswith(" test_s.py::test_s")]
    warm_line = [ln for ln in warm.result.outlines
                 if ln.endswith(" test_s.py::test_s")]
    assert plain_line == ["PASSED test_s.py::test_s"], plain
    assert len(warm_line) == 1 and warm_line[0].startswith("PASSED"), warm


def test_with_cacheprovider(outcomes_project):
    """pytest's own cache on: the same hits, and --lf still selects the
    failures (which run)."""
    tc = outcomes_project
    cold = tc.run(DOCTEST, "-v", base=False)
    warm = tc.run(DOCTEST, "-v", base=False)
    assert warm.outcomes == cold.outcomes, warm
    assert warm.cached == OUTCOMES_PASSING, warm
    assert (tc.root / ".pytest_cache").is_dir()
    lf = tc.run(DOCTEST, "-v", "--lf", base=False)
    assert lf.cached == set(), lf
    assert "test_outcomes.py::test_fail" in lf.ran, lf
    assert not lf.ran & OUTCOMES_PASSING, lf
    # A change is still seen with the import graph cached on disk.
    tc.edit("mod.py", "def double", "X = 1\n\n\ndef double")
    after = tc.run(DOCTEST, "-v", base=False)
    assert after.cached == set(), after   # every test imports mod
    again = tc.run(DOCTEST, "-v", base=False)
    assert again.cached == OUTCOMES_PASSING, again
