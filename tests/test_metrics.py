import json

import pytest

from deeprel.data.types import Entity, Relation, Sentence
from deeprel.evaluation.metrics import METRIC_NAMES, PRF, EvaluationResult, evaluate, metric_name

PER = Entity("PER", 0, 2)
ORG = Entity("ORG", 3, 4)
WORKS_FOR = Relation("works_for", 0, 1)


def doc(entities: tuple[Entity, ...] = (), relations: tuple[Relation, ...] = (), n: int = 8) -> Sentence:
    return Sentence(tokens=tuple(f"t{i}" for i in range(n)), entities=entities, relations=relations)


def score(gold: Sentence, predicted: Sentence) -> EvaluationResult:
    return evaluate([gold], [predicted])


def assert_prf(prf: PRF, p: float, r: float, f1: float) -> None:
    assert (prf.precision, prf.recall, prf.f1) == pytest.approx((p, r, f1))


def test_exact_match_is_100_everywhere() -> None:
    gold = doc((PER, ORG), (WORKS_FOR,))
    result = score(gold, gold)
    assert all(value == pytest.approx(100.0) for value in result.flat().values())
    assert result.strict.ner.micro == PRF(100.0, 100.0, 100.0, support=2, predicted=2, correct=2)
    assert list(result.strict.ner.per_type) == ["ORG", "PER"]


def test_boundary_off_by_one_is_wrong_in_both_modes() -> None:
    result = score(doc((PER,)), doc((Entity("PER", 0, 1),)))
    for mode in ("strict", "boundaries"):
        micro = result.scores(mode, "ner").micro
        assert (micro.support, micro.predicted, micro.correct) == (1, 1, 0)
        assert_prf(micro, 0, 0, 0)


def test_right_boundaries_wrong_type() -> None:
    result = score(doc((PER,)), doc((Entity("LOC", 0, 2),)))
    assert_prf(result.strict.ner.micro, 0, 0, 0)
    assert result.strict.ner.per_type["PER"] == PRF(0, 0, 0, support=1, predicted=0, correct=0)
    assert result.strict.ner.per_type["LOC"] == PRF(0, 0, 0, support=0, predicted=1, correct=0)
    assert_prf(result.boundaries.ner.micro, 100, 100, 100)
    assert result.boundaries.ner.macro == result.boundaries.ner.micro
    assert result.boundaries.ner.per_type == {}


def test_reversed_relation_is_wrong() -> None:
    result = score(doc((PER, ORG), (WORKS_FOR,)), doc((PER, ORG), (Relation("works_for", 1, 0),)))
    assert_prf(result.strict.ner.micro, 100, 100, 100)
    for mode in ("strict", "boundaries"):
        assert_prf(result.scores(mode, "re").micro, 0, 0, 0)


def test_relation_with_wrong_argument_type_is_wrong_strict_right_boundaries() -> None:
    predicted = doc((PER, Entity("LOC", 3, 4)), (WORKS_FOR,))
    result = score(doc((PER, ORG), (WORKS_FOR,)), predicted)
    assert_prf(result.strict.re.micro, 0, 0, 0)
    assert_prf(result.boundaries.re.micro, 100, 100, 100)


def test_relation_with_wrong_relation_type_is_wrong_in_both_modes() -> None:
    predicted = doc((PER, ORG), (Relation("located_in", 0, 1),))
    result = score(doc((PER, ORG), (WORKS_FOR,)), predicted)
    for mode in ("strict", "boundaries"):
        scores = result.scores(mode, "re")
        assert_prf(scores.micro, 0, 0, 0)
        assert scores.per_type["works_for"] == PRF(0, 0, 0, support=1, predicted=0, correct=0)
        assert scores.per_type["located_in"] == PRF(0, 0, 0, support=0, predicted=1, correct=0)


def test_micro_and_macro_differ_on_unbalanced_types() -> None:
    # PER: 4 gold, 2 predicted, both right     -> P 100,   R 50,  F1 66.67
    # LOC: 1 gold, 3 predicted, one right      -> P 33.33, R 100, F1 50
    gold = doc(tuple(Entity("PER", i, i + 1) for i in range(4)) + (Entity("LOC", 10, 11),), n=16)
    predicted = doc(
        (Entity("PER", 0, 1), Entity("PER", 1, 2))
        + (Entity("LOC", 10, 11), Entity("LOC", 12, 13), Entity("LOC", 13, 15)),
        n=16,
    )
    ner = score(gold, predicted).strict.ner
    assert_prf(ner.per_type["PER"], 100, 50, 200 / 3)
    assert_prf(ner.per_type["LOC"], 100 / 3, 100, 50)
    # Micro pools the counts: 3 correct of 5 predicted and 5 gold.
    assert_prf(ner.micro, 60, 60, 60)
    # Macro averages the per-type values; F1 is the mean of F1s (58.33), not 2PR/(P+R) (70.59).
    assert_prf(ner.macro, (100 + 100 / 3) / 2, 75, (200 / 3 + 50) / 2)


def test_empty_predictions() -> None:
    result = score(doc((PER, ORG), (WORKS_FOR,)), doc())
    for mode in ("strict", "boundaries"):
        for task, support in (("ner", 2), ("re", 1)):
            scores = result.scores(mode, task)
            assert scores.micro == PRF(0, 0, 0, support=support, predicted=0, correct=0)
            assert_prf(scores.macro, 0, 0, 0)


def test_empty_gold() -> None:
    result = score(doc(), doc((PER, ORG), (WORKS_FOR,)))
    assert result.strict.ner.micro == PRF(0, 0, 0, support=0, predicted=2, correct=0)
    assert result.strict.re.micro == PRF(0, 0, 0, support=0, predicted=1, correct=0)
    assert all(value == 0 for value in result.flat().values())


def test_nothing_at_all_scores_zero() -> None:
    result = evaluate([], [])
    assert all(value == 0 for value in result.flat().values())
    assert result.strict.ner.per_type == {}


def test_duplicated_predictions_count_once() -> None:
    # Entity 2 repeats entity 0, so all three predicted relations are the same relation.
    predicted = doc((PER, ORG, PER), (WORKS_FOR, WORKS_FOR, Relation("works_for", 2, 1)))
    result = score(doc((PER, ORG), (WORKS_FOR,)), predicted)
    assert result.strict.ner.micro == PRF(100, 100, 100, support=2, predicted=2, correct=2)
    assert result.strict.re.micro == PRF(100, 100, 100, support=1, predicted=1, correct=1)


def test_counts_are_per_sentence() -> None:
    # The same span in another sentence is not a match.
    result = evaluate([doc((PER,)), doc()], [doc(), doc((PER,))])
    assert result.strict.ner.micro == PRF(0, 0, 0, support=1, predicted=1, correct=0)


def test_mismatched_sentences_raise() -> None:
    with pytest.raises(ValueError, match="index 1"):
        evaluate([doc(), doc(n=3)], [doc(), doc(n=4)])
    with pytest.raises(
        ValueError, match=r"sentences at index 1 have different tokens \(gold id 'g', predicted id 'p'\)"
    ):
        evaluate([doc(), Sentence(("a",), id="g")], [doc(), Sentence(("b",), id="p")])
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted sentences"):
        evaluate([doc(), doc()], [doc()])


def test_relation_pointing_at_missing_entity_raises() -> None:
    with pytest.raises(ValueError, match="predicted sentence at index 0.*but the sentence has 1 entities"):
        score(doc((PER,)), doc((PER,), (Relation("works_for", 0, 3),)))


def test_fixed_types_list_order_and_macro_skips_unseen_types() -> None:
    gold = doc((PER, ORG), (WORKS_FOR,))
    predicted = doc((PER,))
    result = evaluate([gold], [predicted], entity_types=["PER", "ORG", "MISC"], relation_types=["works_for"])
    ner = result.strict.ner
    assert list(ner.per_type) == ["PER", "ORG", "MISC"]
    assert ner.per_type["MISC"] == PRF(0, 0, 0, support=0, predicted=0, correct=0)
    # MISC has no gold and no prediction: the macro is over PER (100) and ORG (0) only.
    assert_prf(ner.macro, 50, 50, 50)
    assert (ner.macro.support, ner.macro.predicted, ner.macro.correct) == (2, 1, 1)


def test_type_outside_fixed_list_raises() -> None:
    with pytest.raises(ValueError, match="'ORG'"):
        evaluate([doc((PER, ORG))], [doc((PER,))], entity_types=["PER"])
    with pytest.raises(ValueError, match="'works_for'"):
        evaluate([doc((PER, ORG), (WORKS_FOR,))], [doc()], relation_types=["located_in"])


def test_to_dict_flat_and_table() -> None:
    gold = doc((PER, ORG), (WORKS_FOR,))
    result = score(gold, doc((PER,)))
    as_dict = result.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert list(as_dict) == ["strict", "boundaries"]
    assert list(as_dict["strict"]) == ["ner", "re"]
    assert list(as_dict["strict"]["ner"]) == ["micro", "macro", "per_type"]
    assert list(as_dict["strict"]["ner"]["micro"]) == ["precision", "recall", "f1", "support", "predicted", "correct"]

    flat = result.flat()
    assert flat["ner_micro_f1"] == pytest.approx(200 / 3)
    assert flat["ner_macro_f1"] == pytest.approx(50)
    assert flat["re_macro_p"] == 0
    assert flat["ner_boundaries_micro_f1"] == pytest.approx(200 / 3)
    assert len(flat) == 2 * 2 * 2 * 3  # modes x tasks x (micro, macro) x (p, r, f1)

    table = result.format_table()
    for text in ("NER, strict", "RE, strict", "NER, boundaries", "RE, boundaries", "micro", "macro"):
        assert text in table
    assert " 66.67 " in table
    header = next(line for line in table.splitlines() if line.startswith("type"))
    assert header.split() == ["type", "P", "R", "F1", "support"]


def test_metric_name() -> None:
    assert metric_name("re", "micro", "f1") == "re_micro_f1"
    assert metric_name("ner", "macro", "p", "boundaries") == "ner_boundaries_macro_p"
    assert metric_name("ner", "micro", "r", mode="strict") == "ner_micro_r"


def test_metric_names() -> None:
    assert len(METRIC_NAMES) == len(set(METRIC_NAMES)) == 24
    assert METRIC_NAMES[0] == "ner_micro_p"
    assert METRIC_NAMES[-1] == "re_boundaries_macro_f1"
    assert "re_boundaries_macro_f1" in METRIC_NAMES and "re_micro_f1" in METRIC_NAMES
    # Every score flat() reports has one of these names, and no other.
    assert set(score(doc((PER,)), doc()).flat()) == set(METRIC_NAMES)


def test_prf_value() -> None:
    prf = PRF(50.0, 25.0, 100 / 3, support=4, predicted=2, correct=1)
    assert (prf.value("p"), prf.value("r"), prf.value("f1")) == (50.0, 25.0, 100 / 3)


def test_flat_names_values_by_metric_name() -> None:
    result = score(doc((PER, ORG), (WORKS_FOR,)), doc((PER,)))
    flat = result.flat()
    for mode in ("strict", "boundaries"):
        for task in ("ner", "re"):
            scores = result.scores(mode, task)
            for average, prf in (("micro", scores.micro), ("macro", scores.macro)):
                for value in ("p", "r", "f1"):
                    assert flat[metric_name(task, average, value, mode)] == prf.value(value)
