#!/usr/bin/env bash
# The prefill/decode attribution check (docs/attribution.md, "Checking the fit by prediction"), on a GPU
# machine: two request sets that differ only in prompt length (same output lengths, request by
# request) measured on one vLLM server at each batch size (`jouleflow measure llm-sweep`), then per
# run `jouleflow energy` and `jouleflow attribute`, and per batch size the check
# (benchmarks/attribution_predict.py: each run's fits and which coefficients are resolved, the joint
# fit of the two prompt lengths, prefill shares, cross-predictions). Prints the tables; everything
# lands under OUT.
#
#   benchmarks/attribution_check.sh SPEC OUT [BATCH_SIZES] [SHORT,LONG]
#
# SPEC: a vLLM job spec with `arrival: saturate` (the planner's, results/<campaign>/specs/.../<B>.json,
# or `jouleflow measure llm ... --arrival saturate --print-config`); BATCH_SIZES default 8,64,256;
# prompt lengths default 200,2000. Env: N (requests per set, default 3072: the pool of a saturating
# load; the spec's num_requests is set to it), OUTPUT_LENGTHS (an ML.ENERGY models/*.json histogram;
# default a fixed 256 tokens), HIST_GPU/HIST_MAX_NUM_SEQS (the histogram's configuration), TOKENIZER
# (tokenizer.json to count prompt tokens exactly).
set -euo pipefail
SPEC=${1:?job spec}
OUT=${2:?output directory}
BS=${3:-8,64,256}
LENS=${4:-200,2000}
N=${N:-3072}
mkdir -p "$OUT/request-sets" "$OUT/summaries"

python3 - "$SPEC" "$OUT/spec.json" "$N" <<'PY'
import json, sys
from jouleflow.measure.jobconfig import load_job_spec
spec = load_job_spec(sys.argv[1])
if spec.get("arrival") != "saturate":
    sys.exit(f"{sys.argv[1]}: arrival is {spec.get('arrival')!r}; the check needs a saturating load (arrival: saturate)")
spec["num_requests"] = int(sys.argv[3])
spec.pop("after", None)
json.dump(spec, open(sys.argv[2], "w"), indent=2)
PY

out_args=(--output-len 256)
if [ -n "${OUTPUT_LENGTHS:-}" ]; then
  out_args=(--output-lengths "$OUTPUT_LENGTHS" --gpu "${HIST_GPU:-H100}" --num-gpus 1 --max-num-seqs "${HIST_MAX_NUM_SEQS:-64}")
fi
tok_args=()
if [ -n "${TOKENIZER:-}" ]; then tok_args=(--tokenizer "$TOKENIZER"); fi
sets=()
for len in ${LENS//,/ }; do
  f="$OUT/request-sets/p$len.parquet"
  # The same seed gives request i the same output length in every set: only the prompts differ.
  [ -f "$f" ] || jouleflow prepare requests -o "$f" --num-requests "$N" --prompt-len "fixed:$len" --seed 0 \
    "${out_args[@]}" "${tok_args[@]}"
  sets+=("$f")
done

jouleflow measure llm-sweep --config "$OUT/spec.json" --batch-sizes "$BS" \
  --request-sets "$(IFS=,; echo "${sets[*]}")" --out-root "$OUT/runs" --no-progress

for run in "$OUT"/runs/*/; do
  name=$(basename "$run")
  mkdir -p "$OUT/summaries/$name"
  jouleflow energy "$run" -o "$OUT/summaries/$name/summary.json" > "$OUT/summaries/$name/energy.log" 2>&1 \
    || { tail -3 "$OUT/summaries/$name/energy.log"; continue; }
  jouleflow attribute "$run" --summary "$OUT/summaries/$name/summary.json" \
    -o "$OUT/summaries/$name/attribution.json" --requests "$OUT/summaries/$name/request_energy.parquet"
done

read -r -a lens <<< "${LENS//,/ }"
for b in ${BS//,/ }; do
  echo "== batch size $b: p${lens[0]} vs p${lens[1]}"
  python3 "$(dirname "$0")/attribution_predict.py" "$OUT/runs/$b-p${lens[0]}" "$OUT/runs/$b-p${lens[1]}" --markdown \
    --json "$OUT/summaries/predict-$b.json"
done
