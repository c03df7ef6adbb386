"""Composition of operators in a fixed physical order, and the spec-string parser.

Order (``stage``), from the scene to the file:

    haze (10, atmosphere) → rain (20, a layer in front of the scene) → blur (30, optics and
    camera shake) → low light (40, exposure; linear RGB) → noise (50, sensor) → JPEG (60, camera
    output)

whatever order the spec lists them in. When a mixture holds both ``lowlight`` and a noise
operator, the noise operator becomes the low-light operator's sensor noise: it then acts in
linear RGB between the exposure scaling and the sRGB curve, where a sensor adds it. So the
named mixture ``noise+blur+lowlight`` (alias ``mixed``) is: motion blur, then low exposure, then
Poisson-Gaussian sensor noise, then the sRGB curve.

Spec strings name operators or families joined by ``+``: ``gaussian_noise+defocus_blur``,
``noise+blur+lowlight``. A family stands for its default operator (:data:`FAMILY_DEFAULTS`).
All operators of a mixture share one severity level and one generator; a family may appear once.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from tasks.degradations.base import Degradation, check_severity
from tasks.degradations.blur import DefocusBlur, GaussianBlur, MotionBlur
from tasks.degradations.haze import Haze
from tasks.degradations.jpeg import JPEG
from tasks.degradations.lowlight import CalibratedLowLight, LowLight
from tasks.degradations.noise import GaussianNoise, PoissonGaussianNoise
from tasks.degradations.rain import Rain

OPERATORS: dict[str, type[Degradation]] = {cls.name: cls for cls in (
    GaussianNoise, PoissonGaussianNoise, GaussianBlur, DefocusBlur, MotionBlur, LowLight,
    CalibratedLowLight, Haze, JPEG, Rain)}

#: A family name in a spec means this operator. Noise defaults to the signal-dependent sensor
#: model and blur to camera shake: what a real dim, hand-held capture suffers.
FAMILY_DEFAULTS: dict[str, str] = {"noise": "poisson_gaussian_noise", "blur": "motion_blur",
                                   "lowlight": "lowlight", "haze": "haze", "jpeg": "jpeg",
                                   "rain": "rain"}

#: Named mixtures (alias → spec).
NAMED_MIXTURES: dict[str, str] = {"mixed": "noise+blur+lowlight"}


def operator_class(token: str) -> type[Degradation]:
    name = FAMILY_DEFAULTS.get(token, token)
    if name not in OPERATORS:
        known = sorted({*OPERATORS, *FAMILY_DEFAULTS, *NAMED_MIXTURES})
        raise ValueError(f"unknown degradation {token!r}; use operators or families joined by '+', "
                         f"from: {', '.join(known)}")
    return OPERATORS[name]


def canonical_spec(spec: str) -> str:
    """The canonical text of a spec: equivalent specs name the same task and draw the same seeds.

    Tokens are kept as written (family or operator) but sorted by physical stage, then name;
    a named mixture (``mixed``, or its tokens in any order) keeps its published spelling
    (``noise+blur+lowlight``).
    """
    spec = NAMED_MIXTURES.get(spec.strip(), spec.strip())
    tokens = [t.strip() for t in spec.split("+") if t.strip()]
    if not tokens:
        raise ValueError("empty degradation spec; e.g. 'noise+blur+lowlight' or 'gaussian_blur'")
    classes = [operator_class(t) for t in tokens]
    families = [c.family for c in classes]
    duplicated = sorted({f for f in families if families.count(f) > 1})
    if duplicated:
        raise ValueError(f"degradation spec {spec!r} lists the {duplicated} family more than once; "
                         "a mixture holds one operator per family")
    ordered = "+".join(t for _, t in sorted(zip(classes, tokens, strict=True),
                                            key=lambda ct: (ct[0].stage, ct[1])))
    for named in NAMED_MIXTURES.values():  # a named mixture keeps its published spelling
        if sorted(named.split("+")) == sorted(tokens):
            return named
    return ordered


class Compose:
    """Operators applied in physical order with one generator; records each one's parameters."""

    def __init__(self, operators: list[Degradation]):
        ops = sorted(operators, key=lambda op: op.stage)
        lowlight = next((op for op in ops if isinstance(op, LowLight)), None)
        noise = next((op for op in ops if op.family == "noise"), None)
        if lowlight is not None and noise is not None:
            lowlight.sensor_noise = noise  # sensor noise belongs in linear RGB, before the curve
            ops.remove(noise)
        self.operators = ops

    @property
    def order(self) -> list[str]:
        names = []
        for op in self.operators:
            names.append(op.name)
            if isinstance(op, LowLight) and op.sensor_noise is not None:
                names.append(f"{op.sensor_noise.name} (in {op.name}, linear RGB)")
        return names

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        records: list[dict[str, Any]] = []
        for op in self.operators:
            image, params = op(image, generator)
            records.append(params)
        return image, {"order": self.order, "ops": records}


def build_degradation(spec: str, severity: int, **options: Any) -> Compose:
    """Build the operator mixture of ``spec`` at ``severity``.

    ``options`` go to every operator whose constructor takes them (``color_cast=True`` reaches
    the low-light operator); an option no operator takes is an error.
    """
    severity = check_severity(severity)
    classes = [operator_class(t) for t in canonical_spec(spec).split("+")]
    used: set[str] = set()
    operators = []
    for cls in classes:
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "severity",
                                                                       "sensor_noise"}
        kwargs = {k: v for k, v in options.items() if k in accepted}
        used.update(kwargs)
        operators.append(cls(severity, **kwargs))
    unknown = sorted(set(options) - used)
    if unknown:
        raise ValueError(f"degradation {spec!r}: no operator takes option(s) {unknown}")
    return Compose(operators)
