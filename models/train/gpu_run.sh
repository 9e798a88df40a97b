#!/usr/bin/env bash
# Trains the shipped code model on a lent GPU machine and leaves the results in $OUT.
#
#   OUT=/some/dir bash models/train/gpu_run.sh [BUDGET_SECONDS] [extra models.train.train arguments]
#
# Run in the repository root with the pre-tokenized corpus in build/corpus (`make corpus`, carried) and, where the
# machine has no `gguf` package, its wheel and PyYAML's in .whl/ (carried). BUDGET_SECONDS (default 420) is the
# training run's wall-clock budget, start-up and compilation included; add ~60 s for installing, the final export and
# the summary. Every 2 minutes the run checkpoints and re-exports the GGUF into $OUT, so a run killed at its time
# limit still returns a usable model.
#
# RESUME=1 continues the stopped run of a warm machine (build/train-gpu/checkpoint.pt) instead of starting afresh.
#
# $OUT gets (flat, 6 files, ~17 MiB; 2 more *.tmp if killed mid-export): ryzanstein-code.gguf, ryzanstein-code.reference.npz (PyTorch's
# logits on held-out code, for the engine test), train_log.jsonl (metrics), run.log (stdout/stderr),
# summary.json (figures for the model card), env.txt (machine and versions).
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
PY="${PYTHON:-python3}"
BUDGET="${1:-420}"
shift || true
T0=$(date +%s)
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
cd "$(dirname "$0")/../.." || exit 1
mkdir -p build/train-gpu

if ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import gguf, yaml" 2>/dev/null; then
  # The carried wheels (gguf and PyYAML for CPython 3.12); unpacking a wheel installs it when pip cannot.
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
    || for w in .whl/*.whl; do "$PY" -m zipfile -e "$w" /tmp/site; done
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
  "$PY" -c "import sys, torch, numpy, tokenizers, gguf; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'tokenizers', tokenizers.__version__, 'gguf ok')" 2>&1
  nproc; du -sh build/corpus
} > "$OUT/env.txt"

if ! "$PY" -c "import gguf, torch, tokenizers" 2>>"$OUT/env.txt" || [ ! -f build/corpus/train.u16.xz ]; then
  echo "missing gguf/torch/tokenizers or build/corpus (carry build/corpus and .whl): not training" | tee -a "$OUT/env.txt"
  exit 3
fi
RESUME_ARG=()
if [ "${RESUME:-0}" = 1 ] && [ -f build/train-gpu/checkpoint.pt ]; then
  RESUME_ARG=(--resume)  # a warm machine's stopped run: continue its schedule
else
  rm -f build/train-gpu/checkpoint.pt build/train-gpu/train.log
fi
"$PY" -m models.train.train --out build/train-gpu --corpus build/corpus --budget-seconds "$BUDGET" --compile \
  --log "$OUT/train_log.jsonl" --export-to "$OUT/ryzanstein-code.gguf" --checkpoint-minutes 2 ${RESUME_ARG[@]+"${RESUME_ARG[@]}"} "$@" \
  >> "$OUT/run.log" 2>&1
rc=$?
tail -c 200000 "$OUT/run.log" > "$OUT/run.log.tail" && mv "$OUT/run.log.tail" "$OUT/run.log"
if [ ! -f "$OUT/ryzanstein-code.gguf" ] && [ -f build/train-gpu/checkpoint.pt ]; then
  "$PY" -m models.train.export --ckpt build/train-gpu/checkpoint.pt --out "$OUT/ryzanstein-code.gguf" \
    --corpus build/corpus --quiet >> "$OUT/run.log" 2>&1
fi
rm -f "$OUT"/*.tmp "$OUT"/*.tmp.npz
"$PY" - "$OUT" "$rc" "$T0" <<'EOF' >> "$OUT/run.log" 2>&1
import hashlib, json, sys, time
from pathlib import Path
out, rc, t0 = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
events = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines() if l.startswith("{")]
pick = lambda e: [x for x in events if x.get("event") == e]
steps = [x for x in events if "loss" in x and "event" not in x]
g = out / "ryzanstein-code.gguf"
summary = {
    "train_rc": rc, "wall_seconds": round(time.time() - t0),
    "start": (pick("start") or [None])[0], "sized": pick("sized"), "resized": pick("resized"),
    "evals": pick("eval"), "done": (pick("done") or [None])[-1], "compile_failed": pick("compile_failed"),
    "last_steps": steps[-5:], "exports": pick("exported"),
    "gguf": {"bytes": g.stat().st_size, "sha256": hashlib.sha256(g.read_bytes()).hexdigest()} if g.exists() else None,
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps({"rc": rc, "gguf": summary["gguf"], "done": summary["done"]}))
EOF
ls -la "$OUT"
exit "$rc"
