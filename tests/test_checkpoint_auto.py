"""``unfoldldm[checkpoint=auto]``: the checkpoint is chosen by the task's declared degradation
(issue 22), through the generic ``Restorer.options_for_task`` hook of the planner.

Stand-in specialists: the ``tiny`` configuration with seeded random weights (two different
seeds, so the two families restore differently), written by the project's own
``write_checkpoint`` into a temporary weights folder that replaces the shipped one. Three tasks
declare the degradations ``lowlight``, ``noise`` and ``mixed``; only ``lowlight`` and ``mixed``
ship, so the noise task falls back to the general (``mixed``) checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from harness.api.checkpoints import write_checkpoint
from harness.api.registries import TASKS
from harness.api.restorer import build_restorer
from harness.api.task import Sample, Task, register_task
from harness.io.hashing import file_sha256
from harness.io.results import read_results, read_samples
from harness.run import runner as runner_module
from harness.run.plan import RestorerItem, make_plan
from harness.run.runner import RunConfig, run_benchmark
from harness.tracking.worker import NoTracking
from restorers.unfoldldm.restorer import UnfoldLDM
from tests.probes import in_memory_probe

CPU = torch.device("cpu")
FAMILIES = {"lowlight": 1, "mixed": 2}  # family → weight seed
#: in this order, the two pairs that share a spec are not neighbours: the plan groups them
TASK_DEGRADATIONS = {"t-auto-noise": "noise", "t-auto-lowlight": "lowlight", "t-auto-mixed": "mixed"}
IMAGES = ("a", "b")


def _task_class(name: str, degradation: str) -> type[Task]:
    class Tiny(Task):
        description = f"test: two 24x32 images declared as {degradation}"

        def __init__(self) -> None:
            super().__init__()
            self.degradation = degradation

        def sample_ids(self) -> list[str]:
            return list(IMAGES)

        def load(self, sample_id: str) -> Sample:
            generator = torch.Generator().manual_seed(self.image_seed(sample_id))
            gt = torch.rand(3, 24, 32, generator=generator)
            lq = (0.6 * gt + 0.1 * torch.rand(3, 24, 32, generator=generator)).clamp(0, 1)
            return Sample(sample_id, lq, gt, {})

    Tiny.__name__ = f"Tiny_{degradation}"
    return Tiny


for _name, _degradation in TASK_DEGRADATIONS.items():
    if _name not in TASKS:
        register_task(_name)(_task_class(_name, _degradation))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """``unfoldldm-small-{lowlight,mixed}.pt`` (+ cards), tiny config, seeded random weights."""
    folder = tmp_path_factory.mktemp("weights")
    for family, seed in FAMILIES.items():
        restorer = UnfoldLDM(config="tiny", random_init=True)
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in restorer.net.parameters():
                p.add_(0.02 * torch.randn_like(p))
        write_checkpoint(folder / f"unfoldldm-small-{family}.pt", restorer="unfoldldm",
                         config=restorer.config, model=restorer.state_dict(), ema=None,
                         training=None, provenance={"train_set": f"test-{family}"})
    return folder


@pytest.fixture
def shipped(weights_dir, monkeypatch) -> Path:
    """The temporary folder stands in for ``restorers/unfoldldm/weights`` (mixed = general)."""
    monkeypatch.setattr(UnfoldLDM, "shipped_checkpoint", weights_dir / "unfoldldm-small-mixed.pt")
    return weights_dir


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """The checkpoint value of every ``UnfoldLDM.load`` call, in order."""
    calls: list[str] = []
    original = UnfoldLDM.load

    def counting(self: UnfoldLDM, device: torch.device) -> None:
        calls.append(self.checkpoint)
        original(self, device)

    monkeypatch.setattr(UnfoldLDM, "load", counting)
    return calls


def _config(tmp_path: Path, restorers: list[Any], **kw: Any) -> RunConfig:
    return RunConfig(restorers=restorers, tasks=[(name, {}) for name in TASK_DEGRADATIONS],
                     device="cpu", metrics=["psnr"], output_dir=tmp_path / "results",
                     tracking=False, save_previews=False, show_progress=False, argv=["test"],
                     **kw)


def test_auto_chooses_per_task_and_pairs_that_choose_alike_share_one_spec(shipped):
    plan = make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto"})],
                     [(name, {}) for name in TASK_DEGRADATIONS])
    labels = {u.task.name: u.restorer.label for u in plan.units}
    assert labels == {"t-auto-lowlight": "unfoldldm[checkpoint=auto:lowlight]",
                      "t-auto-noise": "unfoldldm[checkpoint=auto:mixed]",  # no noise file: general
                      "t-auto-mixed": "unfoldldm[checkpoint=auto:mixed]"}
    assert [s.label for s in plan.restorers] == ["unfoldldm[checkpoint=auto:mixed]",
                                                 "unfoldldm[checkpoint=auto:lowlight]"]
    # one spec's units are contiguous (the executor loads a restorer once per spec)
    assert [(u.restorer.label, u.task.name) for u in plan.units] == [
        ("unfoldldm[checkpoint=auto:mixed]", "t-auto-noise"),
        ("unfoldldm[checkpoint=auto:mixed]", "t-auto-mixed"),
        ("unfoldldm[checkpoint=auto:lowlight]", "t-auto-lowlight")]
    # the config is the trained file's (read through the resolver) and names the choice
    mixed, lowlight = plan.restorers
    assert lowlight.config["checkpoint"] == "auto:lowlight" and lowlight.config["config"] == "tiny"
    assert mixed.config["checkpoint"] == "auto:mixed" and mixed.id != lowlight.id
    # the same plan again has the same ids (resume keys on them)
    again = make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto"})],
                      [(name, {}) for name in TASK_DEGRADATIONS])
    assert [u.id for u in again.units] == [u.id for u in plan.units]


def test_a_user_label_gets_the_choice_as_a_suffix(shipped):
    plan = make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto"}, label="mine")],
                     [("t-auto-lowlight", {}), ("t-auto-noise", {})])
    assert [s.label for s in plan.restorers] == ["mine[checkpoint=auto:lowlight]",
                                                 "mine[checkpoint=auto:mixed]"]


def test_auto_next_to_the_general_checkpoint_runs_a_pair_they_share_once(shipped):
    plan = make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto"}),
                      RestorerItem("unfoldldm", {"checkpoint": "auto:mixed"})],
                     [(name, {}) for name in TASK_DEGRADATIONS])
    assert [(u.restorer.label, u.task.name) for u in plan.units] == [
        ("unfoldldm[checkpoint=auto:mixed]", "t-auto-noise"),
        ("unfoldldm[checkpoint=auto:mixed]", "t-auto-lowlight"),
        ("unfoldldm[checkpoint=auto:mixed]", "t-auto-mixed"),
        ("unfoldldm[checkpoint=auto:lowlight]", "t-auto-lowlight")]
    # one configuration under two labels would count its records twice in one row
    with pytest.raises(ValueError, match=r"'mine\[checkpoint=auto:mixed\]' is "
                                         r"'unfoldldm\[checkpoint=auto:mixed\]' again"):
        make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto:mixed"}),
                   RestorerItem("unfoldldm", {"checkpoint": "auto"}, label="mine")],
                  [("t-auto-noise", {})])
    with pytest.raises(ValueError, match="'x' is 'identity' again"):
        make_plan([RestorerItem("identity"), RestorerItem("identity", label="x")],
                  [("t-auto-noise", {})])


class RecordingTracker(NoTracking):
    """``--no-tracking`` that keeps what each pair's MLflow child run would get."""

    pairs: list[dict[str, Any]] = []

    def log_pair(self, **kwargs: Any) -> None:
        self.pairs.append(kwargs)


def test_a_run_records_the_choice_and_restores_exactly_as_the_explicit_checkpoint(
        shipped, loads, tmp_path, monkeypatch, one_call_per_image):
    RecordingTracker.pairs = []
    monkeypatch.setattr(runner_module, "open_tracking", lambda *a, **k: RecordingTracker())
    auto = run_benchmark(_config(tmp_path, [("unfoldldm", {"checkpoint": "auto"})],
                                 run_name="auto"))
    params = {p["tags"]["task"]: p["params"] for p in RecordingTracker.pairs}
    for task, family in (("t-auto-noise", "mixed"), ("t-auto-lowlight", "lowlight"),
                         ("t-auto-mixed", "mixed")):
        assert params[task]["restorer.label"] == f"unfoldldm[checkpoint=auto:{family}]"
        assert params[task]["restorer.config"]["checkpoint"] == f"auto:{family}"
        assert params[task]["restorer.weights_sha256"] == file_sha256(
            shipped / f"unfoldldm-small-{family}.pt")
    assert loads == ["auto:mixed", "auto:lowlight"]  # noise + mixed share one load
    records = read_samples(auto.run_dir / "samples.jsonl")
    assert {(r["task"], r["restorer"]) for r in records} == {
        ("t-auto-lowlight", "unfoldldm[checkpoint=auto:lowlight]"),
        ("t-auto-noise", "unfoldldm[checkpoint=auto:mixed]"),
        ("t-auto-mixed", "unfoldldm[checkpoint=auto:mixed]")}
    assert all(r["status"] == "ok" for r in records) and len(records) == 6
    results = read_results(auto.run_dir / "results.json")
    for family in FAMILIES:
        info = results["restorers"][f"unfoldldm[checkpoint=auto:{family}]"]
        assert info["options"]["checkpoint"] == info["config"]["checkpoint"] == f"auto:{family}"
        assert Path(info["weights"][-1]["file"]) == shipped / f"unfoldldm-small-{family}.pt"
    assert set(results["results"]["unfoldldm[checkpoint=auto:mixed]"]) == {"t-auto-noise",
                                                                           "t-auto-mixed"}
    # the explicit files give the same numbers, image by image (same seeds, same weights)
    explicit = run_benchmark(_config(
        tmp_path, [RestorerItem("unfoldldm", {"checkpoint": str(shipped / f"unfoldldm-small-{f}.pt")},
                                label=f"file-{f}") for f in FAMILIES], run_name="explicit"))
    by_pair = {(r["restorer"], r["task"], r["sample_id"]): r["metrics"]["psnr"]
               for r in read_samples(explicit.run_dir / "samples.jsonl")}
    for r in records:
        family = r["restorer"].removeprefix("unfoldldm[checkpoint=auto:").removesuffix("]")
        assert r["metrics"]["psnr"] == by_pair[(f"file-{family}", r["task"], r["sample_id"])]


def test_the_resolved_restorer_is_bit_identical_to_the_explicit_checkpoint(shipped):
    plan = make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto"})], [("t-auto-lowlight", {})])
    chosen = plan.take_restorer(plan.restorers[0])
    explicit = build_restorer("unfoldldm", checkpoint=str(shipped / "unfoldldm-small-lowlight.pt"),
                              config="tiny")
    other = build_restorer("unfoldldm", checkpoint="auto:mixed", config="tiny")
    lq = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(3))
    outputs = []
    for restorer in (chosen, explicit, other):
        restorer.load(CPU)
        outputs.append(restorer.restore(lq, {"generator": torch.Generator().manual_seed(5)}))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])  # the families really hold other weights


def test_a_family_that_does_not_ship_fails_before_any_model_loads(shipped, loads):
    with pytest.raises(ValueError, match=r"checkpoint=auto:rain: no unfoldldm-small-rain\.pt ships"
                                         r".*shipped families: lowlight, mixed"):
        make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto:rain"})], [("t-auto-noise", {})])
    with pytest.raises(ValueError, match="shipped families: lowlight, mixed"):
        make_plan([RestorerItem("unfoldldm", {"checkpoint": "auto:../weights/unfoldldm-small-mixed"})],
                  [("t-auto-noise", {})])  # a family is looked up, never joined into a path
    with pytest.raises(ValueError, match="chosen per task by `bench run`"):
        UnfoldLDM(config="tiny", checkpoint="auto").check_assets()  # outside a plan
    assert loads == []


def test_bench_list_names_auto_and_the_shipped_families(shipped):
    summary = UnfoldLDM.weights_summary()
    assert "checkpoint=auto: by the task's degradation among the shipped families (lowlight, " \
           "mixed), else mixed" in summary
    assert summary.startswith("ships unfoldldm-small-mixed.pt (config=tiny,")


INTERRUPT = {"after": 10**9, "timed": 0}


def test_an_interrupted_auto_run_resumes_without_redoing_done_images(shipped, loads, tmp_path,
                                                                     monkeypatch,
                                                                     one_call_per_image):
    original = UnfoldLDM._restore

    def interrupting(self: UnfoldLDM, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        if not meta.get("warmup") and not in_memory_probe():  # timed calls only
            if INTERRUPT["timed"] >= INTERRUPT["after"]:
                raise KeyboardInterrupt
            INTERRUPT["timed"] += 1
        return original(self, lq, meta)

    monkeypatch.setattr(UnfoldLDM, "_restore", interrupting)
    INTERRUPT.update(after=3, timed=0)  # noise a, b and mixed a done; mixed b interrupted
    config = _config(tmp_path, [("unfoldldm", {"checkpoint": "auto"})], run_name="r")
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config)
    samples = tmp_path / "results" / "r" / "samples.jsonl"
    done = {(r["task"], r["sample_id"]) for r in read_samples(samples)}
    assert done == {("t-auto-noise", "a"), ("t-auto-noise", "b"), ("t-auto-mixed", "a")}
    INTERRUPT.update(after=10**9, timed=0)
    config.resume = True
    summary = run_benchmark(config)
    assert INTERRUPT["timed"] == 3 and summary.n_skipped == 3  # mixed b, lowlight a and b
    records = read_samples(samples)
    keys = [(r["restorer_id"], r["task"], r["sample_id"]) for r in records]
    assert len(keys) == len(set(keys)) == 6
    results = read_results(summary.run_dir / "results.json")
    assert results["results"]["unfoldldm[checkpoint=auto:mixed]"]["t-auto-mixed"]["psnr"]["n"] == 2
    assert results["results"]["unfoldldm[checkpoint=auto:lowlight]"]["t-auto-lowlight"]["psnr"]["n"] == 2


def test_a_study_keeps_an_auto_entry_one_row_and_says_what_ran(shipped, tmp_path):
    """`bench study ood -r 'unfoldldm[checkpoint=auto]'`: the run holds one spec per choice
    (``unfoldldm[checkpoint=auto][checkpoint=auto:lowlight]`` ...), the study table one row for the
    entry with every task filled, and ``ran_as`` naming the choice per task."""
    from harness.study.grid import StudyConfig, parse_entry, run_study

    config = StudyConfig(kind="ood", entries=[parse_entry("unfoldldm[checkpoint=auto]"),
                                              parse_entry("identity")],
                         tasks=[(name, {}) for name in TASK_DEGRADATIONS], metrics=["psnr"],
                         device="cpu", output_dir=tmp_path, name="auto", tracking=False,
                         show_progress=False, argv=["test"])
    table = run_study(config).table
    psnr = table[table["metric"] == "psnr"]
    auto = psnr[psnr["restorer_name"] == "unfoldldm"]
    assert set(auto["restorer"]) == {"unfoldldm"} and len(auto) == len(TASK_DEGRADATIONS)
    ran = dict(zip(auto["task"], auto["ran_as"], strict=True))
    assert ran == {"t-auto-lowlight": "unfoldldm[checkpoint=auto:lowlight]",
                   "t-auto-noise": "unfoldldm[checkpoint=auto:mixed]",
                   "t-auto-mixed": "unfoldldm[checkpoint=auto:mixed]"}
    assert auto["mean"].notna().all() and (psnr[psnr["restorer"] == "identity"]["ran_as"] == "identity").all()
