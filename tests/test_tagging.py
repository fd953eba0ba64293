import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from deeprel.data.readers import read_sentences
from deeprel.data.tagging import (
    OverlapStats,
    bio_tags,
    canonical,
    decode,
    encode,
    overlapping_pairs,
    relation_targets,
    relations_from_heads,
    resolve_all,
    resolve_overlaps,
    spans_from_bio,
    tag_inventory,
)
from deeprel.data.types import DataError, Entity, Relation, Sentence

TOKENS = tuple("abcdefghij")


def doc(entities: Sequence[Entity], relations: Sequence[Relation] = (), doc_id: str = "d") -> Sentence:
    return Sentence(TOKENS, tuple(entities), tuple(relations), id=doc_id)


def without_offsets(sentence: Sentence) -> Sentence:
    """Offsets are not part of the encoding (readers set them; decode cannot know them)."""
    return replace(sentence, offsets=None)


# --- BIO ----------------------------------------------------------------------------------------


def test_tag_inventory_is_deterministic() -> None:
    assert tag_inventory(["Peop", "Loc", "Peop"]) == ["O", "B-Loc", "I-Loc", "B-Peop", "I-Peop"]


def test_bio_tags() -> None:
    d = doc([Entity("Peop", 3, 5), Entity("Loc", 0, 1), Entity("Adverse-Effect", 8, 10)])
    assert bio_tags(d) == ["B-Loc", "O", "O", "B-Peop", "I-Peop", "O", "O", "O", "B-Adverse-Effect", "I-Adverse-Effect"]


def test_bio_tags_refuse_overlaps() -> None:
    with pytest.raises(DataError, match=r"sentence 'd7': entities A \[0, 3\) and B \[2, 4\) overlap"):
        bio_tags(doc([Entity("A", 0, 3), Entity("B", 2, 4)], doc_id="d7"))


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-A", "I-A", "O", "B-B"], [("A", 0, 2), ("B", 3, 4)]),
        (["B-A", "B-A", "I-A"], [("A", 0, 1), ("A", 1, 3)]),
        # Ill-formed: an I- after O or after another type starts an entity (the CoNLL convention).
        (["O", "I-A", "I-A"], [("A", 1, 3)]),
        (["B-A", "I-B", "I-B"], [("A", 0, 1), ("B", 1, 3)]),
        (["I-A"], [("A", 0, 1)]),
        ([], []),
    ],
)
def test_spans_from_bio(tags: list[str], spans: list[tuple[str, int, int]]) -> None:
    assert spans_from_bio(tags) == [Entity(*s) for s in spans]


# --- multi-head ---------------------------------------------------------------------------------


def test_relation_targets_use_last_tokens() -> None:
    d = doc([Entity("P", 0, 2), Entity("O", 4, 7)], [Relation("W", 0, 1), Relation("W", 0, 1), Relation("X", 1, 0)])
    assert relation_targets(d) == [(1, 6, "W"), (6, 1, "X")]  # unique and sorted


def test_relations_from_heads_drops_triples_off_entity_ends() -> None:
    entities = [Entity("P", 0, 2), Entity("O", 4, 7)]
    assert relations_from_heads(entities, [(1, 6, "W"), (0, 6, "W"), (6, 9, "X"), (6, 6, "S")]) == [
        Relation("W", 0, 1),
        Relation("S", 1, 1),
    ]


def test_canonical_sorts_and_remaps() -> None:
    d = doc([Entity("B", 5, 6), Entity("A", 0, 2)], [Relation("r", 1, 0), Relation("q", 0, 1)])
    assert canonical(d) == doc([Entity("A", 0, 2), Entity("B", 5, 6)], [Relation("r", 0, 1), Relation("q", 1, 0)])


def test_round_trip_of_a_hand_made_sentence() -> None:
    d = doc([Entity("B", 5, 6), Entity("A", 0, 2)], [Relation("r", 1, 0), Relation("s", 0, 0)], doc_id="x")
    tokens, tags, triples, doc_id = encode(d)
    assert (tags[:3], triples, doc_id) == (["B-A", "I-A", "O"], [(1, 5, "r"), (5, 5, "s")], "x")
    assert decode(tokens, tags, triples, doc_id) == canonical(d)


def test_decode_returns_a_sentence_with_its_id() -> None:
    decoded = decode(("a", "b"), ["B-A", "I-A"], [(1, 1, "r")], "x#2")
    assert decoded == Sentence(("a", "b"), (Entity("A", 0, 2),), (Relation("r", 0, 0),), id="x#2")
    assert decoded.id == "x#2" and decoded.offsets is None


def test_encode_ignores_offsets_and_scores() -> None:
    scored = Sentence(
        ("a", "b"), (Entity("A", 0, 1, score=0.5),), (Relation("r", 0, 0, score=0.1),), id="s", offsets=((0, 1), (2, 3))
    )
    assert encode(scored) == (("a", "b"), ["B-A", "O"], [(0, 0, "r")], "s")


def random_representable(rng: random.Random) -> Sentence:
    """Non-overlapping entities of random types and lengths, random distinct relations (self ones too)."""
    length = rng.randint(0, 12)
    entities, position = [], 0
    while position < length:
        position += rng.randint(0, 2)
        end = min(length, position + rng.randint(1, 3))
        if position < end:
            entities.append(Entity(rng.choice(["A", "B-C", "D"]), position, end))
        position = end
    rng.shuffle(entities)
    pairs = [(h, t, k) for h in range(len(entities)) for t in range(len(entities)) for k in ("r", "s")]
    relations = [Relation(k, h, t) for h, t, k in rng.sample(pairs, min(len(pairs), rng.randint(0, 4)))]
    return Sentence(tuple(f"w{i}" for i in range(length)), tuple(entities), tuple(relations), id=str(rng.random()))


def test_round_trip_of_random_representable_sentences() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        d = random_representable(rng)
        assert decode(*encode(d)) == canonical(d)


@pytest.mark.parametrize("split", ["train", "dev", "test", "train_dev"])
def test_round_trip_is_lossless_on_conll04(data_dir: Path, split: str) -> None:
    docs = read_sentences(data_dir / "datasets" / "conll04" / f"conll04_{split}.json", "spert")
    assert all(decode(*encode(d)) == without_offsets(canonical(d)) for d in docs)
    assert sum(len(decode(*encode(d)).relations) for d in docs) == sum(len(d.relations) for d in docs)


# --- overlaps -----------------------------------------------------------------------------------

# Three spans in a chain: 0 overlaps 1, 1 overlaps 2, 0 and 2 are apart; 3 stands alone.
CHAIN = doc(
    [Entity("A", 0, 3), Entity("B", 2, 6), Entity("C", 5, 7), Entity("D", 8, 9)],
    [Relation("r", 0, 3), Relation("r", 1, 3), Relation("r", 3, 2)],
)


@pytest.mark.parametrize(
    ("policy", "kept", "relations", "stats"),
    [
        # longest first: B (4 tokens) wins and excludes A and C
        ("keep_longest", ["B", "D"], [Relation("r", 0, 1)], OverlapStats(1, 2, 2)),
        # earliest first: A, then C (B overlaps A)
        ("keep_first", ["A", "C", "D"], [Relation("r", 0, 2), Relation("r", 2, 1)], OverlapStats(1, 1, 1)),
        ("drop", ["D"], [], OverlapStats(1, 3, 3)),
    ],
)
def test_resolve_overlaps_policies(
    policy: str, kept: list[str], relations: list[Relation], stats: OverlapStats
) -> None:
    resolved, got = resolve_overlaps(CHAIN, policy)
    assert [e.type for e in resolved.entities] == kept
    assert list(resolved.relations) == relations
    assert got == stats
    assert not overlapping_pairs(resolved.entities)


def test_keep_longest_breaks_ties_by_start_and_keeps_one_of_duplicates() -> None:
    d = doc([Entity("X", 3, 5), Entity("Y", 2, 4), Entity("Z", 2, 4)])
    resolved, _ = resolve_overlaps(d, "keep_longest")
    assert resolved.entities == (Entity("Y", 2, 4),)


def test_keep_first_prefers_the_longer_of_equal_starts() -> None:
    d = doc([Entity("Short", 2, 3), Entity("Long", 2, 5)])
    assert resolve_overlaps(d, "keep_first")[0].entities == (Entity("Long", 2, 5),)


def test_error_policy_names_the_sentence() -> None:
    with pytest.raises(DataError, match=r"sentence 'd': entities A \[0, 3\) and B \[2, 6\) overlap"):
        resolve_overlaps(CHAIN, "error")


def test_sentences_without_overlaps_are_untouched() -> None:
    d = doc([Entity("A", 0, 1)], [Relation("r", 0, 0)])
    assert resolve_overlaps(d, "error") == (d, OverlapStats())


def test_stats_add_up() -> None:
    docs, stats = resolve_all([CHAIN, CHAIN, doc([])], "drop")
    assert len(docs) == 3 and stats == OverlapStats(1, 3, 3) + OverlapStats(1, 3, 3) == OverlapStats(2, 6, 6)


@pytest.mark.parametrize(
    ("policy", "stats"),
    [
        ("keep_longest", OverlapStats(documents_affected=119, entities_removed=120, relations_removed=194)),
        ("drop", OverlapStats(documents_affected=119, entities_removed=240, relations_removed=239)),
    ],
)
def test_ade_overlaps(data_dir: Path, policy: str, stats: OverlapStats) -> None:
    """The README's 119 sentences with overlapping spans; after resolving, everything is BIO-encodable."""
    docs, got = resolve_all(read_sentences(data_dir / "datasets" / "ade" / "ade_full.json", "spert"), policy)
    assert got == stats
    assert all(decode(*encode(d)) == without_offsets(canonical(d)) for d in docs)
