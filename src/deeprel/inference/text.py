"""Raw text to sentence ``Document``s with character offsets, by spaCy's rule-based English pipeline.

spaCy's blank English tokenizer plus its "sentencizer" (splits after ".", "!", "?" and the like) is a
well-kept, fast, model-free choice: nothing is downloaded. Offsets are Python ``str`` indices into the
original text, so ``text[start:end] == token`` always holds. Scripts without spaces between words
(Chinese, Japanese) are not segmented into words: a run of such characters stays one token.
"""

from __future__ import annotations

from collections.abc import Sequence

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from deeprel.data.types import DataError, Document


class Tokenizer:
    """Splits raw text into sentences of tokens. The spaCy pipeline is built on first use."""

    def __init__(self) -> None:
        self._nlp: Language | None = None

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            nlp = spacy.blank("en")
            nlp.add_pipe("sentencizer")
            self._nlp = nlp
        return self._nlp

    def split(self, text: str, doc_id_prefix: str = "") -> list[Document]:
        """One ``Document`` per sentence, ``doc_id`` ``f"{doc_id_prefix}#{i}"`` (i counts from 0).

        Every ``Document.text`` is the whole input ``text`` and its ``offsets`` index into it.
        Whitespace tokens are dropped; a sentence of whitespace only is skipped. Besides the
        sentencizer's punctuation rule, a paragraph break (a blank line) always ends a sentence, so
        headings and list items without a final period are not glued to the next sentence; a single
        newline (text wrapped at a fixed width) does not.
        """
        doc = self.nlp.make_doc(text)
        _mark_paragraph_breaks(doc)
        # The sentencizer keeps sentence starts already set (its default overwrite=False).
        doc = self.nlp.get_pipe("sentencizer")(doc)
        documents: list[Document] = []
        for sentence in doc.sents:
            words = [token for token in sentence if not token.is_space]
            if words:
                documents.append(
                    Document(
                        tokens=tuple(token.text for token in words),
                        doc_id=f"{doc_id_prefix}#{len(documents)}",
                        text=text,
                        offsets=tuple((token.idx, token.idx + len(token.text)) for token in words),
                    )
                )
        return documents


def _mark_paragraph_breaks(doc: Doc) -> None:
    """Start a sentence after every whitespace token holding two or more newlines."""
    for token in doc[1:]:
        previous = doc[token.i - 1]
        if previous.is_space and previous.text.count("\n") >= 2:
            token.is_sent_start = True


def from_tokens(tokens: Sequence[str], doc_id: str = "") -> Document:
    """A ``Document`` for pre-tokenised input: ``text`` is the tokens joined by single spaces and
    ``offsets`` point into it. Raises ``DataError`` on an empty token list or an empty token."""
    if not tokens:
        raise DataError(f"document {doc_id!r}: no tokens")
    offsets: list[tuple[int, int]] = []
    start = 0
    for i, token in enumerate(tokens):
        if not token:
            raise DataError(f"document {doc_id!r}: token {i} is empty")
        offsets.append((start, start + len(token)))
        start += len(token) + 1
    return Document(tokens=tuple(tokens), doc_id=doc_id, text=" ".join(tokens), offsets=tuple(offsets))
