"""``python tests/slow_cli.py run ...``: the real ``bench`` CLI with one extra restorer,
``t-sleepy``, that sleeps ``$SLEEPY_S`` (default 0.4) seconds per image, so that a test can hold
a run open while a second process starts (tests/test_reliability.py runs two of these at once).
``$FIXED_RUN_NAME`` makes the default (timestamp) run name that fixed string, as for two runs
started within one second."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.api.restorer import Restorer, register_restorer  # noqa: E402


@register_restorer("t-sleepy")
class Sleepy(Restorer):
    description = "test: identity that sleeps 0.4 s per image"

    def _restore(self, lq, meta):
        if not meta.get("warmup"):
            time.sleep(float(os.environ.get("SLEEPY_S", "0.4")))
        return lq.clone()


if __name__ == "__main__":
    if os.environ.get("FIXED_RUN_NAME"):  # two processes "started in the same second"
        import harness.io.results
        import harness.run.runner

        fixed = lambda: os.environ["FIXED_RUN_NAME"]  # noqa: E731
        harness.io.results.new_run_name = harness.run.runner.new_run_name = fixed
    from harness.cli.main import app

    app(sys.argv[1:], prog_name="bench")
