#!/usr/bin/env bash
# The OOD study of issue 22 (docs/ood.md): UnfoldLDM trained on each single degradation (the
# family specialists of train-family-cpu.sh, equal budgets), the shipped default, identity and the
# best baselines, on the per-operator kodak24-*-s3 tasks, the mixed severities and the real
# benchmarks, in one `bench study ood` call (table, heatmap of the gain over the input, MLflow).
#   restorers/unfoldldm/recipes/ood-study.sh [--limit N] [other bench study ood options]
# Needs every checkpoints/families/<family>/unfoldldm-small-<family>.pt (train-family-cpu.sh);
# a missing one stops the study before any model loads (bench's own check).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=checkpoints/families
restorers=(-r identity -r unfoldldm)
for family in noise blur lowlight haze rain jpeg; do
    restorers+=(-r "unfoldldm[checkpoint=$ROOT/$family/unfoldldm-small-$family.pt]@$family")
done
# the best other restorer of each family on this machine's reference table (results/reference)
restorers+=(-r ffdnet -r nlm -r wiener -r richardson-lucy -r gamma -r lime -r zero-dce -r dcp -r aod-net)
tasks=()
for task in gaussian-noise poisson-gaussian-noise gaussian-blur defocus-blur motion-blur jpeg haze \
            rain lowlight lowlight-calibrated mixed-s1 mixed-s2 mixed-s3 mixed-s4 mixed-s5; do
    tasks+=(-t "kodak24-$task")
done
tasks+=(-t lolv1-tao256 -t hsts -t rain12)
${BENCH_CMD:-python -m harness.cli} study ood "${restorers[@]}" "${tasks[@]}" --name unfoldldm-ood \
    --threads 1 "$@"
