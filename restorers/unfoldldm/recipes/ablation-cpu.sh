#!/usr/bin/env bash
# UnfoldLDM ablation and plug-and-play comparison on one equal CPU budget (Phase I 150 + Phase II 75
# iterations, batch 4, 64² crops; ablation-cpu-phase{1,2}.yaml), then one `bench study` over all of them.
#
#   restorers/unfoldldm/recipes/ablation-cpu.sh train [VARIANT ...]   # train (resumable; all by default)
#   restorers/unfoldldm/recipes/ablation-cpu.sh study [bench study options]
#
# Variants are trained one after another; run two `train` calls with disjoint variants to use two
# cores (each with one torch thread). Checkpoints go to checkpoints/ablation/<variant>.pt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
RECIPES=restorers/unfoldldm/recipes
OUT=checkpoints/ablation

# variant name → restorer spec (architecture options only; phase/init/checkpoint are added here)
declare -A SPEC=(
  [full]="unfoldldm[config=small]"
  [no-prior]="unfoldldm[config=small,prior=false]"
  [holistic-only]="unfoldldm[config=small,mgda=holistic]"
  [decomposed-only]="unfoldldm[config=small,mgda=decomposed]"
  [conv-not-vss]="unfoldldm[config=small,vss=false]"
  [K1]="unfoldldm[config=small,stages=1]"
  [K2]="unfoldldm[config=small,stages=2]"
  [K4]="unfoldldm[config=small,stages=4]"
  [K5]="unfoldldm[config=small,stages=5]"
  [dgunet]="dgunet-pnp[config=small]"
  [dgunet+unfoldldm-parts]="dgunet-pnp[config=small,gradient=mgda,prior=true,proximal=ocformer]"
)
ORDER=(full no-prior holistic-only decomposed-only conv-not-vss K1 K2 K4 K5 dgunet dgunet+unfoldldm-parts)

with() {  # with SPEC EXTRA → SPEC with ",EXTRA" inserted before the closing bracket
  local spec="$1" extra="$2"
  echo "${spec%]},${extra}]"
}

train() {
  local variant="$1" spec="${SPEC[$1]}"
  mkdir -p "$OUT"
  bench train --recipe "$RECIPES/ablation-cpu-phase1.yaml" -r "$(with "$spec" phase=1)" \
    --out "$OUT/$variant-phase1.pt" --resume --no-progress --experiment unfoldldm-ablation
  bench train --recipe "$RECIPES/ablation-cpu-phase2.yaml" \
    -r "$(with "$spec" "phase=2,init=$OUT/$variant-phase1.pt")" \
    --out "$OUT/$variant-phase2.pt" --resume --no-progress --experiment unfoldldm-ablation
  python -c "from pathlib import Path; from harness.api.checkpoints import export_weights; \
print(export_weights(Path('$OUT/$variant-phase2.pt'), Path('$OUT/$variant.pt')))"
}

case "${1:-}" in
  train)
    shift
    for variant in "${@:-${ORDER[@]}}"; do
      [[ -n "${SPEC[$variant]:-}" ]] || { echo "unknown variant $variant; one of: ${ORDER[*]}" >&2; exit 2; }
      train "$variant"
    done
    ;;
  study)
    shift
    args=()
    for variant in "${ORDER[@]}"; do
      args+=(-r "$variant=$(with "${SPEC[$variant]}" "checkpoint=$OUT/$variant.pt")")
    done
    bench study ood "${args[@]}" --name unfoldldm-ablation "$@"
    ;;
  *)
    echo "usage: $0 train [VARIANT ...] | study [bench study options]" >&2
    exit 2
    ;;
esac
