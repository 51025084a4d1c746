import json

import pytest

from worker.engine.suites import SUITES, get_suite


def test_the_three_suites_exist_and_unknown_names_are_refused():
    assert {"class", "robustbench", "smoke"} <= set(SUITES)
    assert get_suite("class") is SUITES["class"]
    with pytest.raises(ValueError, match="known suites"):
        get_suite("nope")


def test_class_suite_has_the_published_protocol():
    suite = get_suite("class")
    assert suite.images == 1024
    assert suite.fgsm.eps == pytest.approx(8 / 255)
    linf, l2 = suite.pgd_linf, suite.pgd_l2
    assert (linf.eps, linf.step_size, linf.steps, linf.random_start) == pytest.approx(
        (8 / 255, 2 / 255, 20, True)
    )
    assert (l2.eps, l2.step_size, l2.steps, l2.random_start) == pytest.approx((0.5, 0.1, 20, True))
    assert linf.noise_draws >= 20 and l2.noise_draws >= 20
    s = suite.smoothing
    assert (s.n0, s.n, s.alpha, s.images) == (100, 100_000, 0.001, 500)
    assert s.radii == (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def test_robustbench_suite_runs_autoattack_and_more_steps_than_class():
    bench, course = get_suite("robustbench"), get_suite("class")
    assert bench.autoattack is not None and course.autoattack is None
    assert bench.pgd_linf.steps > course.pgd_linf.steps
    assert bench.pgd_linf.restarts > course.pgd_linf.restarts


def test_to_dict_records_name_version_and_every_parameter_as_json():
    for suite in SUITES.values():
        data = suite.to_dict()
        assert data["name"] == suite.name and data["version"] == suite.version
        assert json.loads(json.dumps(data)) == data
        assert data["params"]["pgd_linf"]["threat"] == "linf"
        assert data["params"]["smoothing"]["n"] == suite.smoothing.n
        assert "batch_size" in data["params"]
