"""Exact answers: a linear model's robust accuracy is known in closed form."""

from worker.engine.evaluate import evaluate
from worker.engine.suites import get_suite

from .toys import exact_robust_accuracy, linear_problem


def test_pgd_matches_the_exact_robust_accuracy_of_a_linear_model():
    model, images, labels = linear_problem(n=600, seed=0)
    suite = get_suite("class")
    result = evaluate(model, images, labels, suite, seed=0)
    for key, params, dual in (("pgd_linf", suite.pgd_linf, 1), ("pgd_l2", suite.pgd_l2, 2)):
        exact = exact_robust_accuracy(model, images, labels, params.eps, dual)
        assert 0.25 < exact < 0.75, "the problem should have intermediate robustness"
        found = result[key]["accuracy"]
        assert result[key]["n"] == 600
        assert found >= exact - 1e-9, f"{key}: reported {found} below the exact {exact}"
        assert found <= exact + 0.01, f"{key}: reported {found}, exact {exact}"
        attacks = result[key]["attacks"]
        assert found <= min(attacks.values())
        # Saturated softmax stalls plain cross-entropy PGD; the ensemble does not rely on it.
        assert attacks["pgd_ce"] > exact + 0.1
