"""CollabSignals: popularity and co-occurrence learned from recommender turns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from retrieval.collab import CollabSignals
from retrieval.errors import RetrievalError
from retrieval.types import Item


@dataclass(frozen=True)
class Turn:
    """Duck-typed like dialogues.schema.RecTurn (only the fields collab reads)."""

    dialog_id: str
    mentioned: tuple[str, ...]
    gold: tuple[str, ...]


@dataclass(frozen=True)
class TurnWithIds(Turn):
    gold_ids: tuple[str | None, ...] = ()


TITLES = {"Heat": "m1", "Collateral": "m2", "Ronin": "m3", "Up": "m4", "Coco": "m5"}
TURNS = [
    Turn("d1", ("Heat", "crime"), ("Collateral",)),
    Turn("d1", ("Heat", "crime", "Collateral"), ("Ronin", "Unknown Film")),
    Turn("d2", ("Up",), ("Coco",)),
    Turn("d3", ("Heat", "Heat"), ("Collateral", "Collateral")),
]


def test_from_turns_counts_gold_and_symmetric_pairs() -> None:
    signals = CollabSignals.from_turns(TURNS, TITLES)
    assert signals.popularity == {"m2": 2.0, "m3": 1.0, "m5": 1.0}
    assert signals.cooc["m1"] == {"m2": 2.0, "m3": 1.0}
    # m2 and m3: m2 mentioned when m3 was recommended (1), and recommended in the same dialogue (1).
    assert signals.cooc["m2"] == {"m1": 2.0, "m3": 2.0}
    assert signals.cooc["m3"] == {"m1": 1.0, "m2": 2.0}
    assert signals.cooc["m4"] == {"m5": 1.0} and signals.cooc["m5"] == {"m4": 1.0}


def test_items_recommended_in_one_dialogue_co_occur_across_turns() -> None:
    turns = [Turn("a", (), ("Heat",)), Turn("a", (), ("Up",)), Turn("b", (), ("Coco",))]
    signals = CollabSignals.from_turns(turns, TITLES)
    assert signals.cooc == {"m1": {"m4": 1.0}, "m4": {"m1": 1.0}}
    # Without dialogue ids every turn is its own dialogue: no pairs.
    plain = [Turn("", (), ("Heat",)), Turn("", (), ("Up",))]
    assert CollabSignals.from_turns(plain, TITLES).cooc == {}


def test_related_sums_normalized_rows_and_excludes_seeds() -> None:
    signals = CollabSignals.from_turns(TURNS, TITLES)
    # m1's row {m2: 2, m3: 1} → m2 2/3, m3 1/3; m4's row {m5: 1} → m5 1.
    assert signals.related(["m1", "m4"], k=5) == [
        ("m5", 1.0),
        ("m2", pytest.approx(2 / 3)),
        ("m3", pytest.approx(1 / 3)),
    ]
    # m2's row {m1: 2, m3: 2} → m3 2/4.
    assert signals.related(["m1", "m2"], k=5) == [("m3", pytest.approx(1 / 3 + 2 / 4))]
    assert signals.related(["m1"], k=1, exclude={"m2"}) == [("m3", pytest.approx(1 / 3))]
    assert signals.related(["nobody"], k=3) == []


def test_popular_is_ordered_with_ties_by_id() -> None:
    signals = CollabSignals.from_turns(TURNS, TITLES)
    assert signals.popular(3) == [("m2", 2.0), ("m3", 1.0), ("m5", 1.0)]
    assert signals.popular(2, exclude=["m2"]) == [("m3", 1.0), ("m5", 1.0)]
    assert signals.popular(0) == []


def test_from_catalog_merge_save_load(tmp_path: Path) -> None:
    items = [
        Item("m1", "Heat", "Heat", {"popularity": 75.0}),
        Item("m9", "Odd", "Odd", {"popularity": "high"}),
        Item("m4", "Up", "Up", {"popularity": 60}),
    ]
    cold = CollabSignals.from_catalog(items)
    assert cold.popularity == {"m1": 75.0, "m4": 60.0} and cold.cooc == {}
    learned = CollabSignals.from_turns(TURNS, TITLES)
    merged = learned.merge(cold).merge(learned)
    assert merged.popularity["m2"] == 4.0 and merged.popularity["m1"] == 75.0
    assert merged.cooc["m1"]["m2"] == 4.0
    assert learned.popularity["m2"] == 2.0  # merge returns a new object

    path = tmp_path / "sub" / "collab.json"
    merged.save(path)
    assert CollabSignals.load(path) == merged


def test_load_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="not found"):
        CollabSignals.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RetrievalError, match="rebuild"):
        CollabSignals.load(tmp_path / "bad.json")


def test_real_rec_turns_are_accepted_and_gold_ids_win() -> None:
    dialogues = pytest.importorskip("dialogues.schema")
    turn = dialogues.RecTurn(
        dialog_id="d1",
        turn_id=1,
        context=("I loved Heat",),
        mentioned=("Heat",),
        gold=("Collateral", "Ronin"),
        response="Try Collateral or Ronin.",
        accepted=(True, None),
    )
    assert CollabSignals.from_turns([turn], TITLES).related(["m1"], k=2) == [
        ("m2", 0.5),
        ("m3", 0.5),
    ]
    with_ids = TurnWithIds("d1", ("Heat",), ("Collateral (2004)",), gold_ids=("m2",))
    assert CollabSignals.from_turns([with_ids], TITLES).popularity == {"m2": 1.0}
