#!/usr/bin/env bash
# The shipped checkpoint: Phase I, then Phase II, then the export without training state.
# Resumable: run it again after an interruption and it continues where it stopped.
# One thread: on 2 shared cores, two torch threads oversubscribe and run many times slower.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
bench train --recipe restorers/unfoldldm/recipes/small-cpu-phase1.yaml --resume --no-progress
bench train --recipe restorers/unfoldldm/recipes/small-cpu-phase2.yaml --resume --no-progress
python -c "from harness.api.checkpoints import export_weights; print(export_weights(
    __import__('pathlib').Path('checkpoints/unfoldldm-small-mixed-phase2.pt'),
    __import__('pathlib').Path('restorers/unfoldldm/weights/unfoldldm-small-mixed.pt')))"
