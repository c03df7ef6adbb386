"""``bench train``'s options: a recipe file (YAML or JSON) merged with the command line, checked,
and turned into one :class:`~harness.train.config.TrainConfig` per restorer.

A recipe holds the same keys as the options (:data:`OPTION_KEYS`; the command line wins) plus
recipe-only ones (:data:`RECIPE_ONLY`). With ``output_dir``, ``experiment`` and
``tracking_uri`` in the recipe, ``bench train --recipe R --resume`` alone reproduces a training,
its checkpoint and its MLflow run. Every value a user gives is checked here or in
:class:`~harness.train.recipe.Recipe` / :class:`~harness.train.recipe.EarlyStopRule`, with a one-line
``ValueError`` naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.api.items import parse_item, parse_restorer
from harness.io.names import safe_name

OPTION_KEYS = ("restorer", "train_set", "val_task", "iters", "out", "batch_size", "lr", "weight_decay",
               "warmup_iters", "grad_clip", "ema_decay", "amp", "num_workers", "val_every", "val_limit",
               "val_metrics", "checkpoint_every", "seed", "output_dir", "experiment", "tracking_uri")
RECIPE_ONLY = ("progressive", "min_lr_ratio", "val_tasks", "early_stop")
RECIPE_FIELDS = ("iters", "batch_size", "lr", "weight_decay", "warmup_iters", "grad_clip",
                 "ema_decay", "amp", "num_workers", "progressive", "min_lr_ratio")
#: where things go when neither the recipe nor the command line says
LOCATION_DEFAULTS = {"output_dir": "results", "experiment": "restorebench-train", "tracking_uri": None}


def read_recipe(path: Path) -> dict[str, Any]:
    """The mapping in a YAML (``.yaml``/``.yml``) or JSON recipe file, ``-`` in keys read as ``_``."""
    text = Path(path).read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:  # one line: where the syntax breaks
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"{path}: not valid YAML{where} "
                             f"({getattr(exc, 'problem', None) or type(exc).__name__})") from exc
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a mapping of option names to values")
    return {k.replace("-", "_"): v for k, v in data.items()}


def recipe_options(recipe: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The options of ``bench train``: the recipe file's, overridden by those ``given`` (not None;
    keys of :data:`OPTION_KEYS`).

    Raises ``ValueError`` for an unreadable recipe, an unknown key or a missing required one."""
    try:
        options = read_recipe(recipe) if recipe else {}
    except OSError as exc:
        raise ValueError(str(exc)) from exc
    options.update({k: v for k, v in given.items() if v is not None})
    unknown = sorted(set(options) - set(OPTION_KEYS) - set(RECIPE_ONLY))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; allowed: {sorted([*OPTION_KEYS, *RECIPE_ONLY])}")
    for required in ("restorer", "train_set", "out"):
        if not options.get(required):
            raise ValueError(f"--{required.replace('_', '-')} is required (or give it in --recipe)")
    return options


def locations(options: dict[str, Any]) -> dict[str, Any]:
    """``output_dir`` (a :class:`Path`), ``experiment`` and ``tracking_uri`` from ``options``,
    defaults filled in; ValueError for a value that is not a non-empty string."""
    out: dict[str, Any] = {}
    for key, default in LOCATION_DEFAULTS.items():
        value = options.get(key, default)
        if value is None:
            out[key] = None
            continue
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ValueError(f"{key} {value!r}: give a non-empty string (quote it in YAML), "
                             f"e.g. {key}: {_LOCATION_EXAMPLES[key]}")
        out[key] = value.strip()
    out["output_dir"] = Path(out["output_dir"])
    return out


_LOCATION_EXAMPLES = {"output_dir": "checkpoints/allinone", "experiment": "unfoldldm-allinone",
                      "tracking_uri": "sqlite:///checkpoints/allinone/mlflow.db"}


def validation_tasks(options: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]] | None,
                                                        list[tuple[str, dict[str, Any]]]]:
    """``val_task`` and ``val_tasks`` parsed; ValueError for a malformed list or a task given twice."""
    first = parse_item(options["val_task"]) if options.get("val_task") else None
    more = options.get("val_tasks") or []
    if isinstance(more, str):
        more = [more]
    if not isinstance(more, list) or not all(isinstance(t, str) and t.strip() for t in more):
        raise ValueError(f"val_tasks {more!r}: give a list of task specs, e.g. [kodak24-mixed-s3, hsts]")
    rest = [parse_item(text) for text in more]
    tasks = ([first] if first else []) + rest
    for index, task in enumerate(tasks):
        if task in tasks[:index]:
            raise ValueError(f"validation task {task[0]!r} is given twice (val_task and val_tasks "
                             f"together list each task once)")
    return first, rest


def train_configs(options: dict[str, Any], **common: Any) -> list[Any]:
    """One :class:`~harness.train.config.TrainConfig` per restorer of ``options`` (as
    :func:`recipe_options` returns them); ``common`` holds the other TrainConfig fields (device,
    resume, tracking...; ``output_dir``, ``experiment`` and ``tracking_uri`` there win over the
    options'). Validates the recipe values and the specs' syntax;
    :meth:`~harness.train.trainer.Trainer.check` validates the rest without training."""
    from harness.run.plan import RestorerItem
    from harness.train.config import TrainConfig
    from harness.train.recipe import EarlyStopRule, Recipe

    restorers = options["restorer"]
    restorers = [restorers] if isinstance(restorers, str) else list(restorers)
    recipe_fields = {k: options[k] for k in RECIPE_FIELDS if k in options}
    if "grad_clip" in recipe_fields and not recipe_fields["grad_clip"]:
        recipe_fields["grad_clip"] = None
    metrics = options.get("val_metrics", "psnr,ssim")
    metrics = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    items = [RestorerItem(name, opts, train_tag=tag)
             for name, opts, tag in (parse_restorer(text) for text in restorers)]
    val, more = validation_tasks(options)
    early_stop = (EarlyStopRule.parse(options["early_stop"]) if options.get("early_stop") is not None
                  else None)
    where = {**locations(options),
             **{k: v for k, v in common.items() if k in LOCATION_DEFAULTS and v is not None}}
    rest = {k: v for k, v in common.items() if k not in LOCATION_DEFAULTS}
    target = Path(options["out"])
    outs = [target] if len(items) == 1 else [target / f"{safe_name(i.name + str(i.options))}.pt"
                                             for i in items]
    return [TrainConfig(restorer=item, train_set=parse_item(options["train_set"]), out=out,
                        recipe=Recipe(**recipe_fields), val_task=val, val_tasks=more,
                        val_every=int(options.get("val_every", 500)),
                        val_limit=options.get("val_limit", 4),
                        val_metrics=[m.strip() for m in metrics], early_stop=early_stop,
                        checkpoint_every=int(options.get("checkpoint_every", 500)),
                        seed=int(options.get("seed", 0)), **where, **rest)
            for item, out in zip(items, outs, strict=True)]
