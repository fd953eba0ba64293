#!/usr/bin/env bash
# Does a refactor change results? Runs the same small end-to-end jobs with the code of two source trees and
# compares what they wrote: weights (sha256), per-epoch logs, test scores, a crossval fold, evaluate's
# predictions. Run by hand, alone on the machine, from the repository root:
#   git worktree add ../before <commit>;  bash benchmarks/same_results.sh ../before .
set -euo pipefail
BEFORE=$(cd "$1" && pwd); AFTER=$(cd "$2" && pwd); WORK=$(mktemp -d)
export DEEPREL_DATA_DIR="${DEEPREL_DATA_DIR:-$(cd .. && pwd)/shared}" DEEPREL_CACHE_DIR="$WORK/cache" HF_HUB_OFFLINE=1
TINY="--set data.max_train_documents=60 --set data.max_eval_documents=40 --set training.learning_rate=0.005"
run() {  # run SRC OUT: the jobs, with the package imported from SRC
    local out=$2; mkdir -p "$out"
    export PYTHONPATH="$1/src"
    .venv/bin/deeprel train configs/tiny.toml --output "$out/dev" --quiet $TINY --set training.max_epochs=10
    .venv/bin/deeprel train configs/tiny.toml --output "$out/retrain" --quiet $TINY --set training.max_epochs=6 \
        --set training.patience=3 --set training.protocol=retrain --set data.train_dev=datasets/conll04/conll04_train_dev.json
    .venv/bin/deeprel crossval configs/ade.toml --runs "$out/cv" --folds 0 --set data.max_train_documents=60 \
        --set data.max_eval_documents=40 --set training.max_epochs=5 --set training.patience=3 \
        --set training.learning_rate=0.005 --set model.hidden_size=32 > "$out/cv.json"
    .venv/bin/deeprel train configs/tiny.toml --output "$out/ft" --quiet --set data.max_train_documents=24 \
        --set data.max_eval_documents=20 --set training.max_epochs=2 --set embeddings.contextual.mode=finetuned \
        --set embeddings.contextual.finetune_top_k=1
    .venv/bin/deeprel evaluate "$out/dev/model" "$DEEPREL_DATA_DIR/datasets/conll04/conll04_test.json" \
        --output "$out/eval.json" --predictions "$out/pred.jsonl" > /dev/null
}
run "$BEFORE" "$WORK/before" 2> "$WORK/before.log"
run "$AFTER" "$WORK/after" 2> "$WORK/after.log"
.venv/bin/python - "$WORK" <<'PY'
import hashlib, json, pathlib, sys
work = pathlib.Path(sys.argv[1])
def summary(out):
    r = {}
    for run in ("dev", "retrain", "ft"):
        m = json.loads((out / run / "metrics.json").read_text())
        log = [{k: v for k, v in json.loads(l).items() if k != "seconds" and not k.startswith("lr_")} for l in (out / run / "log.jsonl").read_text().splitlines()]
        r[run] = [m.get("test", {}).get("strict"), hashlib.sha256((out / run / "model/model.safetensors").read_bytes()).hexdigest(), log]
    r["cv"] = {k: v for k, v in json.loads((out / "cv.json").read_text()).items() if k.endswith(("_runs", "_mean"))}
    r["eval"] = json.loads((out / "eval.json").read_text())["strict"]
    r["predictions"] = hashlib.sha256((out / "pred.jsonl").read_bytes()).hexdigest()
    return r
before, after = summary(work / "before"), summary(work / "after")
for key in before:
    print(f"{key}: {'same' if before[key] == after[key] else 'DIFFERENT'}")
sys.exit(0 if before == after else 1)
PY
