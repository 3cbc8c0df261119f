"""Dialogue schema, importers, recommender turns and the split by dialogue."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dialogues.importers import dump_dialogues, load_dialogues, load_rec_turns, read_dialogues
from dialogues.schema import Dialogue, RecItem, RecTurn, Turn
from dialogues.split import split_of, split_turns
from retrieval.errors import RetrievalError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # ../shared from the repo root
REDIAL_VALID = SHARED / "data/redial/valid_data_processed.jsonl"

OURS = {
    "dialog_id": "d1",
    "source": "demo",
    "turns": [
        {"role": "user", "text": "I loved Heat", "mentioned": ["Heat"]},
        {
            "role": "assistant",
            "text": "Try Collateral or Ronin.",
            "recommended": [
                {"item_id": "m42", "title": "Collateral", "accepted": True},
                {"item_id": None, "title": "Ronin", "accepted": None},
            ],
        },
        {"role": "user", "text": "Seen Ronin. Something newer?"},
        {"role": "assistant", "text": "Hello there", "recommended": []},
        {
            "role": "assistant",
            "text": "Sicario!",
            "recommended": [{"item_id": "m7", "title": "Sicario", "accepted": False}],
        },
    ],
}

PROCESSED = [
    {
        "dialog_id": "7",
        "turn_id": 2,
        "context": ["", "Hi, what do you like?", "Horror like The Babadook (2014)"],
        "entity": ["horror", "The Babadook (2014)"],
        "rec": ["The Shining (1980)"],
        "resp": "The Shining (1980) is creepy.",
    },
    {
        "dialog_id": "7",
        "turn_id": 4,
        "context": [
            "",
            "Hi, what do you like?",
            "Horror like The Babadook (2014)",
            "The Shining (1980) is creepy.",
            "Seen it. Loved It Follows (2014)",
        ],
        "entity": ["horror", "The Babadook (2014)", "The Shining (1980)", "It Follows (2014)"],
        "rec": ["The Exorcist (1973)"],
        "resp": "Nothing beats The Exorcist (1973).",
        "template": ["ignored extra key"],
    },
    # OpenDialKG-style integer id, context starting with the seeker.
    {"dialog_id": 5, "turn_id": 1, "context": ["I like Space Jam"], "entity": ["Space Jam"],
     "rec": ["Space Jam"], "resp": "Space Jam is fun."},
    # Not a recommender turn: skipped silently.
    {"dialog_id": 6, "turn_id": 1, "context": ["hi"], "entity": [], "rec": [], "resp": "hello"},
]  # fmt: skip


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_rec_turns(tmp_path: Path) -> None:
    turns, rejects = load_rec_turns(_write(tmp_path / "d.jsonl", [OURS]), "jsonl")
    assert rejects == []
    assert turns == [
        RecTurn(
            dialog_id="d1",
            turn_id=1,
            context=("I loved Heat",),
            mentioned=("Heat",),
            gold=("Collateral", "Ronin"),
            response="Try Collateral or Ronin.",
            accepted=(True, None),
            gold_ids=("m42", None),
        ),
        RecTurn(
            dialog_id="d1",
            turn_id=4,
            context=(
                "I loved Heat",
                "Try Collateral or Ronin.",
                "Seen Ronin. Something newer?",
                "Hello there",
            ),
            mentioned=("Heat", "Collateral", "Ronin"),
            gold=("Sicario",),
            response="Sicario!",
            accepted=(False,),
            gold_ids=("m7",),
        ),
    ]


def test_processed_rec_turns(tmp_path: Path) -> None:
    turns, rejects = load_rec_turns(_write(tmp_path / "p.jsonl", PROCESSED), "redial")
    assert rejects == []
    assert [t.dialog_id for t in turns] == ["7", "7", "5"]
    first = turns[0]
    assert first.context == ("Hi, what do you like?", "Horror like The Babadook (2014)")
    assert first.mentioned == ("horror", "The Babadook (2014)")
    assert first.gold == ("The Shining (1980)",)
    assert first.accepted == (None,)
    assert first.response == "The Shining (1980) is creepy."
    assert turns[2].context == ("I like Space Jam",)


MALFORMED = [
    "{not json",
    "[1, 2]",
    {"dialog_id": "x", "turn_id": 1, "context": [], "entity": [], "rec": ["A"]},  # no resp
    {"dialog_id": "x", "turn_id": "1", "context": [], "entity": [], "rec": ["A"], "resp": ""},
    {"dialog_id": "x", "turn_id": 1, "context": [3], "entity": [], "rec": ["A"], "resp": ""},
    {"dialog_id": None, "turn_id": 1, "context": [], "entity": [], "rec": ["A"], "resp": ""},
]


def test_processed_malformed_lines_are_rejected_not_fatal(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", [PROCESSED[0], *MALFORMED, "", PROCESSED[2]])
    rejects_file = tmp_path / "out" / "rejects.jsonl"
    turns, rejects = load_rec_turns(path, "opendialkg", rejects_path=rejects_file)
    assert len(turns) == 2
    assert [r.line for r in rejects] == [2, 3, 4, 5, 6, 7]  # blank line 8 is not a reject
    reasons = [r.reason for r in rejects]
    assert reasons[0].startswith("bad JSON")
    assert reasons[1] == "not a JSON object"
    assert reasons[2] == "missing key 'resp'"
    assert "turn_id" in reasons[3] and "context" in reasons[4] and "dialog_id" in reasons[5]
    written = [json.loads(x) for x in rejects_file.read_text().splitlines()]
    assert [w["line"] for w in written] == [2, 3, 4, 5, 6, 7]
    assert written[0]["raw"] == "{not json"


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"turns": []}, "missing key 'dialog_id'"),
        ({"dialog_id": "a", "turns": {}}, "'turns' has the wrong type"),
        ({"dialog_id": "a", "turns": [{"role": "bot", "text": "x"}]}, "turn 0: 'role'"),
        ({"dialog_id": "a", "turns": [{"role": "user"}]}, "turn 0: missing key 'text'"),
        ({"dialog_id": "a", "turns": ["hi"]}, "turn 0 is not an object"),
        (
            {"dialog_id": "a", "turns": [{"role": "assistant", "text": "x",
                                          "recommended": [{"title": "T", "accepted": "yes"}]}]},
            "turn 0: 'accepted' has the wrong type",
        ),
    ],
)  # fmt: skip
def test_jsonl_malformed(tmp_path: Path, bad: dict, reason: str) -> None:
    turns, rejects = load_rec_turns(_write(tmp_path / "d.jsonl", [bad, OURS]), "jsonl")
    assert len(turns) == 2  # the good dialogue still loads
    assert len(rejects) == 1 and rejects[0].line == 1
    assert rejects[0].reason.startswith(reason)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="not found"):
        load_rec_turns(tmp_path / "nope.jsonl", "jsonl")
    with pytest.raises(RetrievalError, match="unknown dialogue format"):
        load_rec_turns(_write(tmp_path / "d.jsonl", [OURS]), "csv")  # type: ignore[arg-type]


def test_dump_load_roundtrip(tmp_path: Path) -> None:
    d = Dialogue(
        "d9",
        "feedback",
        [
            Turn("user", "hi ✓", mentioned=["Heat"]),
            Turn("assistant", "Ronin", recommended=[RecItem("Ronin", "m1", True)]),
        ],
    )
    dump_dialogues([d], tmp_path / "sub" / "out.jsonl")
    assert load_dialogues(tmp_path / "sub" / "out.jsonl", "jsonl") == [d]
    assert not (tmp_path / "sub" / "out.jsonl.tmp").exists()


def test_processed_dialogue_rebuild_keeps_the_turns(tmp_path: Path) -> None:
    src = _write(tmp_path / "p.jsonl", PROCESSED)
    dialogues, rejects = read_dialogues(src, "redial")
    assert rejects == []
    d7 = next(d for d in dialogues if d.dialog_id == "7")
    assert [t.role for t in d7.turns] == ["assistant", "user", "assistant", "user", "assistant"]
    assert d7.turns[2].recommended == [RecItem("The Shining (1980)")]
    assert d7.turns[4].text == "Nothing beats The Exorcist (1973)."
    # Converting to our schema and back yields the same recommender turns.
    dump_dialogues(dialogues, tmp_path / "ours.jsonl")
    ours, _ = load_rec_turns(tmp_path / "ours.jsonl", "jsonl")
    orig, _ = load_rec_turns(src, "redial")
    assert [(t.dialog_id, t.context, t.gold, t.response) for t in ours] == [
        (t.dialog_id, t.context, t.gold, t.response) for t in orig
    ]
    for a, b in zip(ours, orig, strict=True):
        assert set(b.mentioned) <= set(a.mentioned)


def test_split_of_is_deterministic_and_seeded() -> None:
    ids = [f"dlg{i}" for i in range(2000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i, seed=0) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "dev", "test")}
    assert 0.65 < share["train"] < 0.75 and 0.12 < share["dev"] < 0.18
    assert [split_of(i, seed=1) for i in ids] != splits
    # The bucket is the first 8 hex digits of sha256("0:d1") mod 100.
    bucket = int(hashlib.sha256(b"0:d1").hexdigest()[:8], 16) % 100
    expect = "train" if bucket < 70 else "dev" if bucket < 85 else "test"
    assert split_of("d1") == expect


def test_split_turns_unknown_split() -> None:
    with pytest.raises(RetrievalError, match="unknown split"):
        split_turns([], "valid")


@pytest.mark.skipif(not REDIAL_VALID.is_file(), reason="../shared data not present")
def test_real_redial_valid_file() -> None:
    turns, rejects = load_rec_turns(REDIAL_VALID, "redial")
    assert len(turns) == 2716 and rejects == []
    assert all(t.context and t.context[0] != "" for t in turns)
    parts = {s: split_turns(turns, s) for s in ("train", "dev", "test")}
    assert sum(len(p) for p in parts.values()) == 2716
    ids = {s: {t.dialog_id for t in p} for s, p in parts.items()}
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"]
    assert not ids["dev"] & ids["test"]
    assert split_turns(turns, "all") == turns
