"""Every declared option of every registered restorer and task, fed wrong types, out-of-range
numbers and unknown choices: each gets an :class:`OptionError` naming the item, the option, the
value and what is allowed, raised by the plan before any model is built, loaded or any image read.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import restorers  # noqa: F401  (registers the built-in restorers)
import tasks  # noqa: F401  (registers the built-in tasks)
from harness.api.options import DeclaredOption, OptionError, declared_options
from harness.api.registries import RESTORERS
from harness.api.restorer import Restorer
from harness.api.task import CONVENTION_OPTIONS, TASKS, Task, task_options
from harness.run.plan import RestorerItem, make_plan

#: values of every JSON type the ``name[key=value]`` parser can produce, plus NaN
_PROBES: list[Any] = [{"nested": 1}, [1, 2], "zz-not-a-choice", True, 3.5, -7, float("nan"), None]


def bad_values(spec: DeclaredOption) -> dict[str, list[Any]]:
    """Wrong-type, out-of-range and unknown-choice values for one option (only those it refuses)."""
    out: dict[str, list[Any]] = {"type": [], "range": [], "choice": []}
    out["type"] = [v for v in _PROBES if not spec.accepts(v)
                   and not (isinstance(v, float) and math.isnan(v))][:3]
    for alt in spec.alternatives:
        if alt.range is not None:
            lo, hi = alt.range.low, alt.range.high
            edges = []
            if lo is not None:
                edges += [lo - 1] + ([lo] if alt.range.open_low else [])
            if hi is not None:
                edges += [hi + 1] + ([hi] if alt.range.open_high else [])
            out["range"] += [e for e in edges if not spec.accepts(e)]
        if alt.choices and any(isinstance(c, str) for c in alt.choices):
            out["choice"] += [v for v in ("zz-not-a-choice", str(alt.choices[0]).upper() + "X")
                              if not spec.accepts(v)]
        numbers = [c for c in alt.choices if isinstance(c, int) and not isinstance(c, bool)]
        if numbers:
            out["choice"] += [v for v in (max(numbers) + 7, min(numbers) - 7) if not spec.accepts(v)]
    return out


@pytest.fixture
def no_models(monkeypatch):
    """Loading a model or reading an image during validation is a test failure."""
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded / an image was read before options were validated")

    monkeypatch.setattr(Restorer, "load", forbidden)
    monkeypatch.setattr(Task, "load", forbidden)


def _check(error: OptionError, kind: str, item: str, key: str, value: Any, spec: DeclaredOption) -> None:
    message = str(error)
    assert f"{kind} {item!r}" in message and key in message, message
    assert repr(value) in message, message
    assert spec.allowed in message, message


def _restorer_cases() -> list[tuple[str, str, str, Any]]:
    cases = []
    for name in RESTORERS.names():
        for key, spec in declared_options(RESTORERS.get(name)).items():
            for category, values in bad_values(spec).items():
                cases += [(name, key, category, v) for v in values]
    return cases


def test_every_restorer_option_has_a_bad_value_of_each_kind_it_declares():
    """The fuzz below is not vacuous: each option refuses some wrong type, every ranged option
    some out-of-range number, every choice option some unknown choice."""
    for name in RESTORERS.names():
        for key, spec in declared_options(RESTORERS.get(name)).items():
            bad = bad_values(spec)
            assert bad["type"], f"{name}.{key} accepts every type ({spec.allowed})"
            if any(a.range for a in spec.alternatives):
                assert bad["range"], f"{name}.{key}"
            free_text = any(a.type is str for a in spec.alternatives)
            if any(a.choices for a in spec.alternatives) and not free_text:
                assert bad["choice"], f"{name}.{key}"


@pytest.mark.parametrize(("name", "key", "category", "value"), _restorer_cases(),
                         ids=lambda v: str(v)[:24])
def test_bad_restorer_option_fails_in_the_plan(name, key, category, value, no_models):
    spec = declared_options(RESTORERS.get(name))[key]
    with pytest.raises(OptionError) as info:
        make_plan([RestorerItem(name, {key: value})], [("demo", {})], check_assets=True)
    _check(info.value, "restorer", name, key, value, spec)


def _task_cases() -> list[tuple[str, str, str, Any]]:
    cases = []
    names = [*TASKS.names(), "synth:kodak24:noise+lowlight@2"]
    for name in names:
        specs, _ = task_options(name)
        for key, spec in specs.items():
            if key in CONVENTION_OPTIONS and name != "demo":
                continue  # the conventions are the same spec for every task: fuzzed on one
            for category, values in bad_values(spec).items():
                cases += [(name, key, category, v) for v in values]
    return cases


@pytest.mark.parametrize(("name", "key", "category", "value"), _task_cases(), ids=lambda v: str(v)[:24])
def test_bad_task_option_fails_in_the_plan(name, key, category, value, no_models):
    spec = task_options(name)[0][key]
    with pytest.raises(OptionError) as info:
        make_plan([RestorerItem("identity")], [(name, {key: value})])
    _check(info.value, "task", name, key, value, spec)


def test_unknown_task_option_lists_the_real_ones(no_models):
    with pytest.raises(OptionError, match="has no option 'refrence_noise'; its options are: "
                                          "reference_noise, clip_input"):
        make_plan([RestorerItem("identity")], [("kodak24-awgn25", {"refrence_noise": True})])


def test_the_three_reported_probes(no_models):
    """nlm[sigma=banana], nlm[sigma=-5], kodak24-awgn25[reference_noise=maybe] (issue 9)."""
    with pytest.raises(OptionError, match=r"sigma='banana' is not allowed; sigma must be "
                                          r"'task' \| 'estimate' or float in \[0, 255\]"):
        make_plan([RestorerItem("nlm", {"sigma": "banana"})], [("demo", {})])
    with pytest.raises(OptionError, match=r"sigma=-5 is not allowed"):
        make_plan([RestorerItem("nlm", {"sigma": -5})], [("demo", {})])
    with pytest.raises(OptionError, match=r"reference_noise='maybe' is not allowed; "
                                          r"reference_noise must be true \| false"):
        make_plan([RestorerItem("identity")], [("kodak24-awgn25", {"reference_noise": "maybe"})])


def test_good_values_still_pass():
    """Tightened hints keep every default valid (an option's own default is always allowed)."""
    for name in RESTORERS.names():
        for key, spec in declared_options(RESTORERS.get(name)).items():
            if not spec.required:
                assert spec.accepts(spec.default), f"{name}.{key}={spec.default!r}"
    for name in TASKS.names():
        for key, spec in task_options(name)[0].items():
            if not spec.required:
                assert spec.accepts(spec.default), f"{name}.{key}={spec.default!r}"
