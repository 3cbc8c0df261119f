"""`recochat eval`: title mapping, protocols, baselines and the end-to-end report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from dialogues.schema import RecTurn
from evaluation.baselines import NaiveLLMSystem, conversation_text, parse_title_lines
from evaluation.cli import add_eval_parser
from evaluation.protocol import resolve_turn, sample_by_dialogue, user_words
from evaluation.report import (
    CONVERSATION_KEYS,
    META_KEYS,
    RANKING_KEYS,
    SYSTEM_KEYS,
    system_names,
)
from evaluation.runner import SystemRun, TurnRecord, score
from evaluation.system_adapters import SystemOutput
from retrieval.titles import TitleIndex, normalize_title
from retrieval.types import Item

CATALOG = [
    ("m1", "Heat", 1995, ["crime", "thriller"], "A detective hunts a master thief in Los Angeles.", 90),
    ("m2", "Collateral", 2004, ["crime", "thriller"], "A cab driver is forced to drive a hitman around.", 70),
    ("m3", "Ronin", 1998, ["action", "thriller"], "Mercenaries chase a mysterious briefcase in France.", 40),
    ("m4", "The Shining", 1980, ["horror"], "A writer goes mad in an isolated snowbound hotel.", 80),
    ("m5", "Halloween", 1978, ["horror"], "A masked killer stalks babysitters on Halloween night.", 60),
    ("m6", "Halloween", 2007, ["horror"], "A remake of the masked killer story.", 20),
    ("m7", "Amélie", 2001, ["comedy", "romance"], "A shy waitress in Paris improves others' lives.", 50),
    ("m8", "Toy Story", 1995, ["animation", "family"], "Toys come alive when their owner leaves.", 85),
    ("m9", "Finding Nemo", 2003, ["animation", "family"], "A clownfish crosses the ocean to find his son.", 75),
    ("m10", "Sicario", 2015, ["crime", "thriller"], "An FBI agent joins a covert war on a drug cartel.", 30),
    ("m11", "It Follows", 2014, ["horror"], "A curse is passed on through intimacy.", 25),
    ("m12", "Paddington", 2014, ["family", "comedy"], "A polite bear from Peru finds a home in London.", 35),
]  # fmt: skip


def _items() -> list[Item]:
    return [
        Item(i, t, f"{t}. {d}", {"year": y, "genres": g, "description": d, "popularity": p})
        for i, t, y, g, d, p in CATALOG
    ]


def _turn(gold, mentioned=(), context=("hi",), dialog_id="d", gold_ids=()) -> RecTurn:
    return RecTurn(dialog_id, 1, tuple(context), tuple(mentioned), tuple(gold), "",
                   (None,) * len(gold), tuple(gold_ids))  # fmt: skip


# -- titles ---------------------------------------------------------------------------------


def test_normalize_title() -> None:
    assert normalize_title("The Shining (1980)") == "shining"
    assert normalize_title("Amélie") == "amelie"
    assert normalize_title("Matrix, The") == "matrix"
    assert normalize_title("Mad Max: Fury Road!") == "mad max fury road"


def test_title_index_exact_normalized_year_and_fuzzy() -> None:
    idx = TitleIndex(_items(), {i: p for i, *_, p in CATALOG})
    assert idx.lookup("Heat") == "m1"
    assert idx.lookup("the shining (1980)") == "m4"
    assert idx.lookup("Amelie") == "m7"
    assert idx.lookup("Halloween (2007)") == "m6"  # year picks the remake
    assert idx.lookup("Halloween") == "m5"  # no year: the more popular one
    assert idx.lookup("Findng Nemo") is None  # a typo needs fuzzy matching...
    assert idx.lookup("Findng Nemo", fuzzy=True) == "m9"  # ratio 95.7 >= 90
    assert idx.lookup("Nemo", fuzzy=True) is None  # ratio 50: not the same title
    assert idx.lookup_id_or_title("m3", "whatever") == "m3"
    assert idx.lookup_id_or_title("m999", "Ronin") == "m3"


# -- protocols, scored by hand ----------------------------------------------------------------


def test_novel_and_raw_protocols_by_hand() -> None:
    idx = TitleIndex(_items())
    turns = [
        resolve_turn(_turn(["Heat", "Ronin"], mentioned=["Heat"]), idx),
        resolve_turn(
            _turn(["Sicario", "Not In Catalog"], context=("Sicario (2015) was great",)), idx
        ),
    ]
    assert turns[0].gold == ("m1", "m3") and turns[0].mentioned == {"m1"}
    assert turns[1].mentioned == {"m10"}  # written verbatim in the context
    assert turns[1].n_unmapped == 1
    run = SystemRun("s", [
        TurnRecord({"novel": ["m1", "m2", "m3"], "raw": ["m1", "m2", "m3"]},
                   SystemOutput(["m1", "m2", "m3"], latency_ms=10.0)),
        TurnRecord({"novel": ["m10", "m4"], "raw": ["m10", "m4"]},
                   SystemOutput(["m10", "m4"], latency_ms=30.0)),
    ])  # fmt: skip
    report = score(run, turns, catalog_size=12, head=frozenset({"m1", "m8", "m4"}), vectors=None)
    raw, novel = report["raw"], report["novel"]
    # raw: 4 gold items (Heat, Ronin | Sicario, <not in catalog>).
    # @1: Heat hit (turn 1), Sicario hit (turn 2) -> 2/4 = 0.5
    # @10: + Ronin at rank 3 -> 3/4 = 0.75
    assert raw["recall@1"] == 0.5 and raw["recall@10"] == 0.75
    # raw MRR@10: turn 1 rank 1 -> 1, turn 2 rank 1 -> 1; mean 1.0
    assert raw["mrr@10"] == 1.0
    # novel: Heat (mentioned) and Sicario (verbatim in context) leave the gold and the ranking.
    # turn 1: gold {Ronin}, ranking [m2, m3] -> rank 2; turn 2: gold {<nic>}, ranking [m4].
    # recall@1 = 0/2; recall@10 = 1/2; MRR@10 = (1/2 + 0) / 2 = 0.25
    assert novel["recall@1"] == 0.0 and novel["recall@10"] == 0.5
    assert novel["mrr@10"] == 0.25
    # NDCG@10 turn 1: DCG = 1/log2(3) = 0.630930, IDCG = 1 -> 0.630930; turn 2: 0 -> mean 0.315465
    assert novel["ndcg@10"] == pytest.approx(0.315465, abs=1e-6)
    # lists (novel top 10): [m2, m3] and [m4]: 3 distinct of 12 -> coverage 0.25;
    # entries m2, m3, m4 with head {m1, m4, m8}: tail m2, m3 -> 2/3
    assert report["coverage"] == 0.25
    assert report["long_tail_share"] == pytest.approx(2 / 3)
    assert report["latency_ms"] == {"p50": 20.0, "p95": 29.0}  # 10 + 0.5*20; 10 + 0.95*20
    assert report["n_turns"] == 2 and report["n_gold"] == 4
    assert report["reason_unsupported_rate"] is None and report["intra_list_diversity"] is None


def test_short_titles_are_not_matched_verbatim() -> None:
    idx = TitleIndex([Item("u", "Up", "Up", {})])
    turn = resolve_turn(_turn(["Up"], context=("Cheer me up please",)), idx)
    assert turn.mentioned == frozenset()


def test_reasons_may_name_the_records_of_items_the_dialogue_mentioned() -> None:
    from chatbot.reply.reason_checks import unsupported_claims

    items = _items()
    by_id = {it.item_id: it for it in items}
    turn = resolve_turn(
        _turn(["Collateral"], mentioned=["Heat"], context=("like Heat",)), TitleIndex(items)
    )
    link = "Collateral is a crime title; recommended alongside Heat (1995) in past conversations."
    assert unsupported_claims(link, by_id["m2"], turn.reason_support(by_id)) == []
    other = (
        "Collateral is a crime title; recommended alongside Sicario (2015) in past conversations."
    )
    assert unsupported_claims(other, by_id["m2"], turn.reason_support(by_id)) == ["2015"]


def test_sample_by_dialogue_takes_whole_dialogues() -> None:
    turns = [_turn(["Heat"], dialog_id=f"d{i // 3}") for i in range(30)]  # 10 dialogues x 3
    sample = sample_by_dialogue(turns, 9, seed=1)
    assert len(sample) == 9 and len({t.dialog_id for t in sample}) == 3
    assert sample == sample_by_dialogue(turns, 9, seed=1)
    assert sample != sample_by_dialogue(turns, 9, seed=2)
    assert sample_by_dialogue(turns, None, seed=0) == turns


def test_roles_count_back_from_the_last_utterance() -> None:
    # ReDial context after the leading "" is dropped: recommender greeting first.
    context = ("Hi, what do you like?", "Horror please", "The Shining?", "Seen it")
    assert user_words(context) == "Horror please\nSeen it"
    assert conversation_text(context).splitlines()[0] == "Assistant: Hi, what do you like?"


# -- naive LLM baseline: real prompt file, fake model output at the boundary -------------------


def test_parse_title_lines_snapshot() -> None:
    text = (
        "Here are some movies you might like:\n"
        "1. **Heat** - a classic heist thriller\n"
        '2) "Collateral"\n'
        "- Ronin.\n"
        "* collateral\n"
        "\n"
        "Sicario because it is tense\n"
        "I think the user would enjoy these because they are all crime stories with great casts "
        "and memorable scores.\n"
    )
    assert parse_title_lines(text) == ["Heat", "Collateral", "Ronin", "Sicario"]


class _FakeLLM:
    """Returns canned completions; records what it was asked."""

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = outputs
        self.prompts: list[str] = []

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        return f"<user>{user_text}</user>"

    def generate(self, prompts: list[str], max_new_tokens: int, *, stop=None) -> list[str]:
        assert max_new_tokens == 128 and stop is None  # the brief's budget, the whole list
        self.prompts += prompts
        return self.outputs[: len(prompts)]


def test_naive_llm_maps_titles_and_counts_out_of_catalog() -> None:
    llm = _FakeLLM(["1. Heat (1995)\n2. Findng Nemo\n3. The Big Lebowski\n4. heat", "no idea"])
    system = NaiveLLMSystem(llm, TitleIndex(_items()))
    outs = system.rank_many([("I like crime films",), ("hello", "hi", "anything")],
                            exclude_mentioned=True)  # fmt: skip
    assert outs[0].ranked == ["m1", "m9"]  # both Heat lines rank once; Lebowski is not in it
    assert (outs[0].n_recommended, outs[0].out_of_catalog) == (4, 1)  # 4 titles written
    assert (outs[1].ranked, outs[1].n_recommended, outs[1].out_of_catalog) == ([], 1, 1)
    assert llm.prompts[0] == (
        "<user>Here is a conversation between a user and a recommender.\n\n"
        "User: I like crime films\n\n"
        "What should the recommender suggest next? List up to 10 titles, one per line, most "
        "fitting first. Write only the titles, nothing else.</user>"
    )


# -- end to end ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recochat")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(["eval", *argv])
    return args.func(args)


def _dialogue(dialog_id: str, liked: str, gold: str) -> dict:
    return {"dialog_id": dialog_id, "source": "test", "turns": [
        {"role": "user", "text": f"I loved {liked}, what else?", "mentioned": [liked]},
        {"role": "assistant", "text": f"Try {gold}.",
         "recommended": [{"item_id": None, "title": gold, "accepted": True}]},
        {"role": "user", "text": "Something for the kids now"},
        {"role": "assistant", "text": "Toy Story!",
         "recommended": [{"item_id": "m8", "title": "Toy Story", "accepted": None}]},
    ]}  # fmt: skip


@pytest.fixture
def eval_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)  # no stray recochat.toml
    monkeypatch.delenv("RECOCHAT_CONFIG", raising=False)
    monkeypatch.setenv("RECOCHAT_HOME", str(tmp_path / "home"))
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(
        json.dumps({"id": i, "title": t, "year": y, "genres": g, "description": d,
                    "popularity": p}) + "\n"
        for i, t, y, g, d, p in CATALOG
    ))  # fmt: skip
    dialogues = tmp_path / "dialogues.jsonl"
    rows = [
        json.dumps(_dialogue("a", "Heat", "Collateral")),
        '{"dialog_id": "broken", "turns": [',  # malformed: counted and skipped
        json.dumps(_dialogue("b", "The Shining", "It Follows")),
    ]
    dialogues.write_text("\n".join(rows) + "\n")
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(_dialogue(d, "Heat", "Sicario")) for d in "axy") + "\n")
    return {"catalog": catalog, "dialogues": dialogues, "train": train, "out": tmp_path / "out"}


def _assert_shape(report: dict, systems: list[str], n_turns: int = 4) -> None:
    assert system_names(report) == systems
    assert set(report) == set(META_KEYS)
    for name in systems:
        s = report["systems"][name]
        assert tuple(k for k in s if k != "conversation") == SYSTEM_KEYS
        assert tuple(s["novel"]) == RANKING_KEYS and tuple(s["raw"]) == RANKING_KEYS
        assert set(s["latency_ms"]) == {"p50", "p95"}
        assert s["n_turns"] == n_turns and s["n_gold"] == n_turns  # one gold item per turn
        for value in (*s["novel"].values(), *s["raw"].values(), s["coverage"]):
            assert 0.0 <= value <= 1.0


def test_eval_end_to_end_retrieval_and_popularity(eval_files: dict[str, Path]) -> None:
    f = eval_files
    argv = ["--catalog", str(f["catalog"]), "--dialogues", str(f["dialogues"]),
            "--train", str(f["train"]), "--systems", "retrieval,popularity",
            "--out", str(f["out"]), "--no-progress"]  # fmt: skip
    assert _run(argv) == 0
    report = json.loads((f["out"] / "report.json").read_text())
    _assert_shape(report, ["retrieval", "popularity"])
    assert report["catalog_items"] == 12
    d = report["dialogues"]
    assert (d["dialogues"], d["turns"], d["malformed_lines"]) == (2, 4, 1)
    rejects = (f["out"] / "dialogue_rejects.jsonl").read_text().splitlines()
    assert json.loads(rejects[0])["line"] == 2
    # Train dialogue "a" is also evaluated: its turns never reach the collaborative signals.
    assert (
        report["config"]["train_turns"] == 4
        and report["config"]["train_turns_dropped_as_overlap"] == 2
    )
    # Popularity from train: Sicario (2 turns) and Toy Story (2) lead; Toy Story is gold twice.
    pop = report["systems"]["popularity"]
    assert pop["raw"]["recall@10"] > 0 and pop["out_of_catalog_rate"] == 0.0
    assert report["systems"]["retrieval"]["intra_list_diversity"] is not None
    for name in ("report.md", "recall.png", "latency.png", "turns.jsonl"):
        assert (f["out"] / name).stat().st_size > 0
    assert (f["out"] / "recall.png").read_bytes()[:4] == b"\x89PNG"
    md = (f["out"] / "report.md").read_text()
    assert "| retrieval |" in md and "1 malformed dialogue line(s) were skipped" in md
    # A rerun reuses the cached collection (same name, no re-embedding needed).
    assert _run([*argv[:-3], "--out", str(f["out"] / "again"), "--no-progress"]) == 0
    again = json.loads((f["out"] / "again" / "report.json").read_text())
    assert again["config"]["collection"] == report["config"]["collection"]
    assert again["systems"]["popularity"] == {
        **report["systems"]["popularity"],
        "latency_ms": again["systems"]["popularity"]["latency_ms"],
    }


def test_eval_flag_errors(eval_files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    f = eval_files
    base = ["--catalog", str(f["catalog"]), "--dialogues", str(f["dialogues"]),
            "--out", str(f["out"])]  # fmt: skip
    assert _run([*base, "--train-split"]) == 2
    assert "--train-split needs --split dev or --split test" in capsys.readouterr().err
    assert _run([*base, "--systems", "retrieval,magic"]) == 2
    assert "unknown system" in capsys.readouterr().err
    assert _run([*base, "--train", str(f["dialogues"])]) == 2
    assert "use --train-split" in capsys.readouterr().err


def test_eval_help_exits_zero() -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["eval", "--help"])
    assert exc.value.code == 0


@pytest.mark.slow
def test_eval_end_to_end_full_and_naive_llm(
    eval_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small budgets keep the real default LLM fast on CPU; the path is the product's.
    monkeypatch.setenv("RECOCHAT_RETRIEVAL__K_CANDIDATES", "5")
    monkeypatch.setenv("RECOCHAT_RETRIEVAL__K_FINAL", "2")
    monkeypatch.setenv("RECOCHAT_LLM__MAX_REASON_TOKENS", "12")
    monkeypatch.setattr("evaluation.baselines.NAIVE_MAX_NEW_TOKENS", 24)
    f = eval_files
    argv = ["--catalog", str(f["catalog"]), "--dialogues", str(f["dialogues"]), "--limit", "2",
            "--systems", "full,naive-llm", "--out", str(f["out"]), "--no-progress"]  # fmt: skip
    assert _run(argv) == 0
    report = json.loads((f["out"] / "report.json").read_text())
    _assert_shape(report, ["full", "naive-llm"], n_turns=2)
    full, naive = report["systems"]["full"], report["systems"]["naive-llm"]
    assert full["out_of_catalog_rate"] == 0.0  # a permutation of catalog candidates
    assert full["reason_unsupported_rate"] is not None  # reasons were generated and checked
    assert 0.0 <= naive["out_of_catalog_rate"] <= 1.0 and naive["reason_unsupported_rate"] is None
    rows = [json.loads(x) for x in (f["out"] / "turns.jsonl").read_text().splitlines()]
    assert sum(1 for r in rows if r["system"] == "full" and r.get("reasons")) == 2
    assert all("llm_output" in r for r in rows if r["system"] == "naive-llm")
    talk = full["conversation"]  # the system that writes replies; the naive LLM writes none
    assert tuple(talk) == CONVERSATION_KEYS and "conversation" not in naive
    assert talk["n_replies"] == 2 and talk["ungrounded_titles"] == 0
    assert talk["reply_survival_rate"] + talk["fallback_rate"] == pytest.approx(1.0)
    assert talk["n_perplexity"] == 2 and talk["perplexity"] > 1.0
    assert talk["bleu2"] is not None and 0.0 <= talk["distinct2"] <= 1.0


def test_dataset_presets_fill_the_data_flags(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evaluation.cli import apply_dataset

    parser = _parser()
    args = parser.parse_args(
        ["eval", "--dataset", "redial", "--data-dir", str(tmp_path), "--out", "x"]
    )
    assert _run(["--dataset", "redial", "--data-dir", str(tmp_path), "--out", "x"]) == 2
    assert "pass --data-dir" in capsys.readouterr().err
    (tmp_path / "redial").mkdir()
    (tmp_path / "redial" / "valid_data_processed.jsonl").write_text("")
    apply_dataset(args)
    assert (args.catalog, args.catalog_format) == (tmp_path / "redial/id2info.json", "redial")
    assert (args.format, args.split, args.train_split, args.train) == ("redial", "test", True, None)
    assert _run(["--out", "x"]) == 2
    assert "pass --catalog and --dialogues, or --dataset" in capsys.readouterr().err
