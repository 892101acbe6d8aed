#!/usr/bin/env bash
# Runs one of DESIGN.md's workloads through rlhf-tui and through its peer,
# side by side on the same machine and thread count, and prints both JSON
# lines and the ratio:
#   gen  transformers' generate (scripts/bench_gen_transformers.py)
#   ppo  TRL's PPOTrainer       (scripts/bench_trl.py ppo)
#   grpo TRL's GRPOTrainer      (scripts/bench_trl.py grpo)
#   dpo  TRL's DPOTrainer       (scripts/bench_trl.py dpo)
#   rm   TRL's RewardTrainer    (scripts/bench_trl.py rm)
#   sft  TRL's SFTTrainer       (scripts/bench_trl.py sft)
# PYTHON must have torch, transformers and, for all but gen, trl (see README).
# ROUNDS=N alternates the two N times and also prints the median of the N
# ratios: on a shared machine one pair of runs can land minutes apart in
# very different conditions. SHAPE picks the models' shape (gpt2-4x256, the
# default, or smollm2-135m; see scripts/bench_shapes.py).
#   SHAPE=smollm2-135m ROUNDS=3 scripts/bench_compare.sh gen|ppo|grpo|dpo|rm|sft [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
workload="${1:?usage: scripts/bench_compare.sh gen|ppo|grpo|dpo|rm|sft [repeats]}"
repeats="${2:-5}"
threads="${THREADS:-$(nproc)}"
python="${PYTHON:-python3}"
export SHAPE="${SHAPE:-gpt2-4x256}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rlhf-tui-target}"
case "$workload" in
    gen) peer_cmd=(scripts/bench_gen_transformers.py "$repeats"); key=tokens_per_s ;;
    ppo) peer_cmd=(scripts/bench_trl.py ppo "$repeats"); key=episodes_per_s ;;
    grpo) peer_cmd=(scripts/bench_trl.py grpo "$repeats"); key=episodes_per_s ;;
    dpo) peer_cmd=(scripts/bench_trl.py dpo "$repeats"); key=pairs_per_s ;;
    rm) peer_cmd=(scripts/bench_trl.py rm "$repeats"); key=pairs_per_s ;;
    sft) peer_cmd=(scripts/bench_trl.py sft "$repeats"); key=tokens_per_s ;;
    *) echo "unknown workload $workload: gen, ppo, grpo, dpo, rm or sft" >&2; exit 2 ;;
esac
cargo build --release --quiet
rounds="${ROUNDS:-1}"
# The peer's warnings and progress bars go to a log, shown if it fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ratios=()
for _ in $(seq "$rounds"); do
    ours=$(RAYON_NUM_THREADS=$threads "$CARGO_TARGET_DIR/release/rlhf-tui" bench "$workload" --shape "$SHAPE" --device cpu --repeats "$repeats")
    if ! peer=$(THREADS=$threads "$python" "${peer_cmd[@]}" 2>"$log" | tail -n 1); then
        cat "$log" >&2
        exit 1
    fi
    echo "$ours"
    echo "$peer"
    ratio=$("$python" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(a[sys.argv[3]]/b[sys.argv[3]])' "$ours" "$peer" "$key")
    echo "{\"ratio_$key\": $ratio}"
    ratios+=("$ratio")
done
if [ "$rounds" -gt 1 ]; then
    "$python" -c 'import json,statistics,sys; r=[float(x) for x in sys.argv[2:]]; print(json.dumps({"median_ratio_" + sys.argv[1]: statistics.median(r), "ratios": r}))' "$key" "${ratios[@]}"
fi
