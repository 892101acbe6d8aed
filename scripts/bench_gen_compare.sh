#!/usr/bin/env bash
# Runs the `gen` workload through rlhf-tui and through transformers, side by
# side on the same machine and thread count, and prints both JSON lines and
# the ratio. PYTHON must have torch and transformers (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${THREADS:-$(nproc)}"
python="${PYTHON:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rlhf-tui-target}"
cargo build --release --quiet
ours=$(RAYON_NUM_THREADS=$threads "$CARGO_TARGET_DIR/release/rlhf-tui" bench gen --device cpu)
peer=$(THREADS=$threads "$python" scripts/bench_gen_transformers.py)
echo "$ours"
echo "$peer"
"$python" -c 'import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(json.dumps({"ratio_tokens_per_s": a["tokens_per_s"]/b["tokens_per_s"]}))' "$ours" "$peer"
