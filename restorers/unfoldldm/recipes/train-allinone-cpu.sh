#!/usr/bin/env bash
# All-in-one UnfoldLDM `small` (every degradation family; allinone-cpu-phase{1,2}.yaml): Phase I,
# Phase II, then the export without training state to checkpoints/allinone/unfoldldm-small-allinone.pt.
# Resumable: run it again after an interruption and it continues from the last checkpoint (every
# 50 iterations). One torch thread (two oversubscribe the shared 2-core VM).
#   UNFOLDLDM_RUN_DIR=/work/unfoldldm-training restorers/unfoldldm/recipes/train-allinone-cpu.sh
# UNFOLDLDM_RUN_DIR (optional) keeps checkpoints, validation tiles and mlflow.db outside the
# repository: checkpoints/allinone becomes a link to it. BENCH_CMD defaults to `python -m harness.cli`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
RUN=checkpoints/allinone
mkdir -p checkpoints
if [[ -n "${UNFOLDLDM_RUN_DIR:-}" && ! -e "$RUN" ]]; then
    mkdir -p "$UNFOLDLDM_RUN_DIR"
    ln -s "$UNFOLDLDM_RUN_DIR" "$RUN"
fi
mkdir -p "$RUN"
[[ -d "$RUN/val/lq" ]] || python -m restorers.unfoldldm.recipes.allinone_val "$RUN/val"
BENCH_CMD="${BENCH_CMD:-python -m harness.cli}"
common=(--resume --no-progress --output-dir "$RUN" --experiment unfoldldm-allinone)
recipes=restorers/unfoldldm/recipes
$BENCH_CMD train --recipe "$recipes/allinone-cpu-phase1.yaml" "${common[@]}"
$BENCH_CMD train --recipe "$recipes/allinone-cpu-phase2.yaml" "${common[@]}"
python -c "import sys; from pathlib import Path; from harness.api.checkpoints import export_weights
print(export_weights(Path(sys.argv[1]), Path(sys.argv[2])))" \
    "$RUN/unfoldldm-small-allinone-phase2.pt" "$RUN/unfoldldm-small-allinone.pt"
