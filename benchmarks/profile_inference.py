"""Where end-to-end inference's time goes, part by part (run by hand, on an otherwise idle machine).

Times each part of ``Predictor.predict`` over a data file with forward hooks on the model's modules (the
encoder with its tokenising and pooling, the character and token-level BiRNN stacks, the relation scorer)
and wrappers around featurisation, Viterbi, the marginals and relation decoding; one warm-up pass first.

    python benchmarks/profile_inference.py --model runs/conll04-frozen/seed-1/model --precision bf16
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.inference.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--data", default="datasets/conll04/conll04_test.json")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    predictor = Predictor.load(args.model, device="cpu", precision=args.precision)
    model = predictor.model
    seconds: dict[str, float] = defaultdict(float)
    started: dict[str, float] = {}

    def hooks(name: str, module: Any) -> None:
        module.register_forward_pre_hook(lambda *_: started.__setitem__(name, time.perf_counter()))
        module.register_forward_hook(
            lambda *_: seconds.__setitem__(name, seconds[name] + time.perf_counter() - started[name])
        )

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - begin

        return wrapper

    parts = {
        "encoder (tokenise, forward, pool)": model.embedder.contextual,
        "character BiRNN": model.embedder.chars,
        "shared BiRNN stack": model.shared,
        "NER BiRNN stack": model.ner_stack,
        "RE BiRNN stack": model.re_stack,
        "relation scorer": model.scorer,
    }
    for name, module in parts.items():
        if module is not None:
            hooks(name, module)
    model.crf.viterbi_tags = timed("Viterbi", model.crf.viterbi_tags)
    model.crf.marginals = timed("marginals", model.crf.marginals)
    model._relations = timed("relation decoding", model._relations)
    predictor.featurizer.batch = timed("featurisation", predictor.featurizer.batch)
    sentences = read_sentences(resolve_data_path(args.data))
    predictor.predict(sentences, batch_size=args.batch_size)  # warm-up
    seconds.clear()
    begin = time.perf_counter()
    predictor.predict(sentences, batch_size=args.batch_size)
    total = time.perf_counter() - begin
    for name, value in seconds.items():
        print(f"{name:>34}: {value:6.3f} s ({value / total:5.1%})")
    print(f"{'end-to-end':>34}: {total:6.3f} s for {len(sentences)} sentences at {predictor.precision}")


if __name__ == "__main__":
    main()
