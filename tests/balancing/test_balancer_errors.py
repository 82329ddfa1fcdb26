"""Clear errors: an unknown balancer name (the closest is suggested), an option a balancer
does not have, invalid option values, and options naming unknown tasks."""

from __future__ import annotations

import pytest
from balancer_helpers import vector_model

from taskgrouper.balancing import build_balancer


@pytest.mark.parametrize("given,expected", [("pcgard", "pcgrad"), ("mgdaub", "mgda_ub"),
                                            ("nash", "nash_mtl"), ("grad_drop", "graddrop")])
def test_unknown_name_suggests_the_closest(given, expected):
    with pytest.raises(ValueError, match=f"unknown balancer '{given}'; did you mean "
                                         f"'{expected}'"):
        build_balancer(given)


@pytest.mark.parametrize("name,option,hint", [
    ("cagrad", "alpha", "choices: batched, c, rep"),
    ("gradnorm", "alhpa", "did you mean 'alpha'"),
    ("mgda_ub", "rep", "choices: batched, normalization"),
    ("uncertainty", "lr", "it takes no options"),
])
def test_an_option_the_balancer_does_not_have(name, option, hint):
    with pytest.raises(ValueError, match=f"balancer '{name}' has no option '{option}'; {hint}"):
        build_balancer(name, **{option: 1})


@pytest.mark.parametrize("name,options,message", [
    ("mgda", {"normalization": "l1"}, "'normalization' must be one of none, l2, loss, loss\\+"),
    ("mgda", {"rep": "yes"}, "'rep' must be true or false"),
    ("pcgrad", {"batched": 1}, "'batched' must be true or false"),
    ("gradnorm", {"alpha": -1.0}, "'alpha' must be a number >= 0"),
    ("gradnorm", {"lr": 0.0}, "'lr' must be > 0"),
    ("dwa", {"temperature": 0}, "'temperature' must be a number > 0"),
    ("dtp", {"gamma": -0.5}, "'gamma' must be a number >= 0"),
    ("dtp", {"alpha": 1.5}, "'alpha' must be in \\(0, 1\\]"),
    ("dtp", {"kpi": {"seg": 3}}, "'kpi' must map task names to metric names"),
    ("cagrad", {"c": -0.1}, "'c' must be a number >= 0"),
    ("nash_mtl", {"update_every": 0}, "'update_every' must be an integer >= 1"),
    ("imtl", {"learn_scales": "no"}, "'learn_scales' must be true or false"),
    ("pareto_mtl", {"preference": 5}, "'preference' is 5 but there are 5 preference vectors"),
    ("pareto_mtl", {"n_preferences": 0}, "'n_preferences' must be an integer >= 1"),
    ("pareto_mtl", {"vector": [0, 0]}, "'vector' must hold numbers >= 0, not all zero"),
    ("graddrop", {"leak": 2.0}, "'leak' must be in \\[0, 1\\]"),
    ("graddrop", {"seed": 0.5}, "'seed' must be an integer"),
    ("famo", {"lr": -1}, "'lr' must be a number > 0"),
    ("famo", {"gamma": -1}, "'gamma' must be a number >= 0"),
])
def test_invalid_option_values(name, options, message):
    with pytest.raises(ValueError, match=f"balancer '{name}': option {message}"):
        build_balancer(name, **options)


@pytest.mark.parametrize("name,options,message", [
    ("graddrop", {"leak": {"clss": 1.0}}, "leak given for unknown task 'clss'; did you mean "
                                          "'cls'"),
    ("dtp", {"kpi": {"rg": "l1"}}, "kpi given for unknown task 'rg'"),
    ("pareto_mtl", {"vector": {"cls": 1.0, "regg": 2.0}}, "vector names unknown task 'regg'"),
    ("pareto_mtl", {"vector": [1.0, 2.0, 3.0]}, "'vector' has 3 values for 2 tasks"),
])
def test_options_naming_unknown_tasks_fail_at_setup(name, options, message):
    model = vector_model(2)  # tasks reg, cls
    balancer = build_balancer(name, **options)
    with pytest.raises(ValueError, match=message):
        balancer.setup(model.tasks, model)
