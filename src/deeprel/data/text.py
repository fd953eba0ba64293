"""Raw text to a ``Document`` of sentences with character offsets, by spaCy's rule-based English pipeline.

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

from deeprel.data.types import DataError, Document, Sentence


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

    def document(self, text: str, id: str = "") -> Document:
        """The text as a document of sentences; sentence ``n`` has the id ``f"{id}#{n}"`` (n from 0).

        Every sentence's ``offsets`` index ``text``. Whitespace tokens are dropped; a sentence of
        whitespace only is skipped. Besides the sentencizer's punctuation rule, a paragraph break (a
        blank line) always ends a sentence, so headings and list items without a final period are not
        glued to the next sentence; a single newline (text wrapped at a fixed width) does not.
        """
        doc = self.nlp.make_doc(text)
        _mark_paragraph_breaks(doc)
        # The sentencizer keeps sentence starts already set (its default overwrite=False).
        doc = self.nlp.get_pipe("sentencizer")(doc)
        sentences: list[Sentence] = []
        for sentence in doc.sents:
            words = [token for token in sentence if not token.is_space]
            if words:
                sentences.append(
                    Sentence(
                        tokens=tuple(token.text for token in words),
                        id=f"{id}#{len(sentences)}",
                        offsets=tuple((token.idx, token.idx + len(token.text)) for token in words),
                    )
                )
        return Document(id, text, tuple(sentences))


def _mark_paragraph_breaks(doc: Doc) -> None:
    """Start a sentence after every whitespace token holding two or more newlines."""
    for token in doc[1:]:
        previous = doc[token.i - 1]
        if previous.is_space and previous.text.count("\n") >= 2:
            token.is_sent_start = True


def from_tokens(tokens: Sequence[str], id: str = "") -> Document:
    """A one-sentence ``Document`` for pre-tokenised input: its text is the tokens joined by single
    spaces. Raises ``DataError`` on an empty token list or an empty token."""
    if not tokens:
        raise DataError(f"document {id!r}: no tokens")
    for i, token in enumerate(tokens):
        if not token:
            raise DataError(f"document {id!r}: token {i} is empty")
    return Document.from_tokens(tokens, id=id)
