"""CoNLL04 as training data for spaCy's CLI: our Sentences to spaCy Docs and back, saved as DocBin files.

    python benchmarks/spacy_ner/prepare.py --output runs/spacy-ner/corpus

writes ``train.spacy`` and ``dev.spacy`` there, for
``python -m spacy train benchmarks/spacy_ner/config.cfg --paths.train .../train.spacy --paths.dev .../dev.spacy``.
Tokens are kept exactly as given (spaCy does not re-tokenise them: the config reads the corpora with
``gold_preproc``), entities are set by token index, and overlapping entities are resolved with the same
policy as deeprel's training (``keep_longest``; CoNLL04 has essentially none).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from deeprel.atomic import write_bytes_atomically
from deeprel.config import resolve_data_path
from deeprel.data.readers import read_sentences
from deeprel.data.tagging import OverlapPolicy, OverlapStats, resolve_all
from deeprel.data.types import Entity, Sentence


def to_spacy_doc(sentence: Sentence, vocab: Vocab) -> Doc:
    """The sentence's tokens, joined by single spaces as deeprel joins pre-tokenised input, with its
    entities as ``doc.ents``. Overlapping entities raise ``ValueError`` (spaCy's ents cannot nest)."""
    tokens = list(sentence.tokens)
    doc = Doc(vocab, words=tokens, spaces=[i < len(tokens) - 1 for i in range(len(tokens))])
    doc.ents = [Span(doc, entity.start, entity.end, label=entity.type) for entity in sentence.entities]
    return doc


def from_spacy_doc(doc: Doc, id: str = "") -> Sentence:
    """A spaCy Doc's tokens and entities (``doc.ents``, by token index) as a deeprel Sentence."""
    return Sentence(
        tokens=tuple(token.text for token in doc),
        entities=tuple(Entity(span.label_, span.start, span.end) for span in doc.ents),
        id=id,
    )


def to_docbin(sentences: Iterable[Sentence], policy: OverlapPolicy) -> tuple[DocBin, OverlapStats]:
    """All sentences in one DocBin (a spaCy Doc each), after removing overlapping entities with ``policy``."""
    resolved, stats = resolve_all(sentences, policy)
    vocab = spacy.blank("en").vocab
    return DocBin(docs=(to_spacy_doc(sentence, vocab) for sentence in resolved)), stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, type=Path, help="Folder for train.spacy and dev.spacy.")
    parser.add_argument("--train", default="datasets/conll04/conll04_train.json")
    parser.add_argument("--dev", default="datasets/conll04/conll04_dev.json")
    parser.add_argument("--overlap-policy", choices=get_args(OverlapPolicy), default="keep_longest")
    args = parser.parse_args()

    for split, source in (("train", args.train), ("dev", args.dev)):
        sentences = read_sentences(resolve_data_path(source))
        docbin, stats = to_docbin(sentences, args.overlap_policy)
        target = args.output / f"{split}.spacy"
        write_bytes_atomically(target, docbin.to_bytes())
        entities = sum(len(s.entities) for s in sentences) - stats.entities_removed
        print(
            f"{split}: {len(docbin)} sentences, {entities} entities "
            f"({args.overlap_policy} removed {stats.entities_removed}) -> {target}"
        )


if __name__ == "__main__":
    main()
