#!/usr/bin/env bash
# Paper-scale UnfoldLDM `full` for one benchmark: Phase I (300k), Phase II (400k, initialised from
# Phase I), then the export without training state to checkpoints/unfoldldm-full-BENCH.pt.
#   restorers/unfoldldm/recipes/train-paper.sh BENCH           # train (resumable: run it again)
#   restorers/unfoldldm/recipes/train-paper.sh BENCH --check   # validate recipes and data only
# BENCH: lolv1 | sidd | gopro | rain100l | uieb | baid  (recipes paper-BENCH-phase{1,2}.yaml).
# Data go under BENCH_DATA_ROOT (see the UnfoldLDM README, "Reproducing a paper row").
# Evaluate: bench run -r 'unfoldldm[config=full,checkpoint=checkpoints/unfoldldm-full-BENCH.pt]' -t TASK
set -euo pipefail
cd "$(dirname "$0")/../../.."
BENCHES="lolv1 sidd gopro rain100l uieb baid"
bench_name="${1:-}"
if [[ -z "$bench_name" || " $BENCHES " != *" $bench_name "* ]]; then
    echo "usage: $0 BENCH [--check]   (BENCH: ${BENCHES// / | })" >&2
    exit 2
fi
recipes=restorers/unfoldldm/recipes
BENCH_CMD="${BENCH_CMD:-bench}"  # e.g. BENCH_CMD='python -m harness.cli.main' in a source checkout
if [[ "${2:-}" == "--check" ]]; then
    $BENCH_CMD train --recipe "$recipes/paper-$bench_name-phase1.yaml" --check
    $BENCH_CMD train --recipe "$recipes/paper-$bench_name-phase2.yaml" --check
    exit 0
fi
$BENCH_CMD train --recipe "$recipes/paper-$bench_name-phase1.yaml" --resume --no-progress
$BENCH_CMD train --recipe "$recipes/paper-$bench_name-phase2.yaml" --resume --no-progress
python -c "import sys; from pathlib import Path; from harness.api.checkpoints import export_weights
print(export_weights(Path(sys.argv[1]), Path(sys.argv[2])))" \
    "checkpoints/unfoldldm-full-$bench_name-phase2.pt" "checkpoints/unfoldldm-full-$bench_name.pt"
