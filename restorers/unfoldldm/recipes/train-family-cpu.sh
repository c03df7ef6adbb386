#!/usr/bin/env bash
# UnfoldLDM `small` specialists, one per degradation family (families/<family>-phase{1,2}.yaml,
# written by family_recipes.py): for each FAMILY given (default: all, low light first), Phase I,
# Phase II, then the export without training state to
# checkpoints/families/<family>/unfoldldm-small-<family>.pt. Resumable: run it again after an
# interruption and it continues from the last checkpoint (every 50 iterations); a finished
# family is skipped. One torch thread (two oversubscribe the shared 2-core VM).
#   UNFOLDLDM_RUN_DIR=/work/unfoldldm-families restorers/unfoldldm/recipes/train-family-cpu.sh lowlight
# UNFOLDLDM_RUN_DIR (optional) keeps checkpoints, validation tiles and mlflow.db outside the
# repository: checkpoints/families becomes a link to it. BENCH_CMD defaults to `python -m harness.cli`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ROOT=checkpoints/families
mkdir -p checkpoints
if [[ -n "${UNFOLDLDM_RUN_DIR:-}" && ! -e "$ROOT" ]]; then
    mkdir -p "$UNFOLDLDM_RUN_DIR"
    ln -s "$UNFOLDLDM_RUN_DIR" "$ROOT"
fi
BENCH_CMD="${BENCH_CMD:-python -m harness.cli}"
recipes=restorers/unfoldldm/recipes
families=("$@")
[[ ${#families[@]} -gt 0 ]] || families=(lowlight mixed noise blur haze rain jpeg)
for family in "${families[@]}"; do
    run="$ROOT/$family"
    final="$run/unfoldldm-small-$family.pt"
    if [[ -e "$final" ]]; then echo "$family: $final exists, skipped"; continue; fi
    mkdir -p "$run"
    [[ -d "$run/val/lq" ]] || python -m restorers.unfoldldm.recipes.family_val "$family" "$run/val"
    common=(--resume --no-progress --output-dir "$run" --experiment unfoldldm-families)
    $BENCH_CMD train --recipe "$recipes/families/$family-phase1.yaml" "${common[@]}"
    $BENCH_CMD train --recipe "$recipes/families/$family-phase2.yaml" "${common[@]}"
    # the best Phase II weights when early stopping kept them, else the last
    phase2="$run/unfoldldm-small-$family-phase2.pt"
    best="${phase2%.pt}.best.pt"
    [[ -e "$best" ]] && phase2="$best"
    python -c "import sys; from pathlib import Path; from harness.api.checkpoints import export_weights
print(export_weights(Path(sys.argv[1]), Path(sys.argv[2])))" "$phase2" "$final"
done
