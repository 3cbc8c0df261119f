"""The `recochat` CLI in-process: help, index, ask across turns, and bad-input paths."""

from __future__ import annotations

import json

import pytest

from recochat.cli import build_parser, main

SUBCOMMANDS = ["index", "ask", "chat", "eval", "finetune", "bench"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert command in capsys.readouterr().out


def test_subcommands_are_all_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)


def _write(path, rows):
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")


GOOD = [
    '{"id": "1", "title": "Night Drive", "year": 2004, "genres": ["crime"], '
    '"description": "A cab driver and a stranger cross the city at night."}',
    '{"id": "2", "title": "Toy Box", "year": 1995, "genres": ["animation", "family"], '
    '"description": "Toys come alive when nobody is looking."}',
    '{"id": "3", "title": "Space Farm", "year": 2015, "genres": ["sci-fi", "comedy"], '
    '"description": "A botanist grows potatoes on a lonely planet."}',
]


def test_index_then_ask_two_turns(tmp_path, capsys):
    catalog = tmp_path / "c.jsonl"
    _write(catalog, GOOD)
    assert main(["index", "--catalog", str(catalog)]) == 0
    out = capsys.readouterr().out
    assert "indexed 3 items" in out and "rejected 0" in out

    session = tmp_path / "s.json"
    args = ["--session", str(session), "--json", "--no-reasons", "--k", "1"]
    assert main(["ask", "something like Night Drive, but no animation", *args]) == 0
    first = json.loads(capsys.readouterr().out)
    # Night Drive was mentioned and Toy Box is animation: only Space Farm is left.
    assert [r["item_id"] for r in first["recommendations"]] == ["3"]
    assert set(first["timings_ms"]) >= {"total", "rerank", "retrieval"}
    assert first["act"] == "request"
    assert main(["ask", "anything else?", *args]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["recommendations"] == []
    assert json.loads(session.read_text())["constraints"]["exclude_genres"] == ["animation"]
    assert main(["ask", "what year did Space Farm come out?", "--session", str(session)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["Space Farm came out in 2015."] or (len(out) == 1 and "2015" in out[0])


def test_reindex_upserts_and_deletes(tmp_path, capsys):
    catalog = tmp_path / "c.jsonl"
    _write(catalog, GOOD)
    assert main(["index", "--catalog", str(catalog)]) == 0
    capsys.readouterr()
    changed = [GOOD[0].replace("at night", "at dawn"), GOOD[1]]  # one changed, one removed
    _write(catalog, changed)
    assert main(["index", "--catalog", str(catalog)]) == 0
    assert "updated 1, deleted 1, unchanged 1" in capsys.readouterr().out


def test_malformed_rows_are_rejected_and_valid_rows_kept(tmp_path, capsys):
    catalog = tmp_path / "c.jsonl"
    rows = [GOOD[0], "{not json", '{"title": "No id"}', GOOD[1], GOOD[1], GOOD[2]]
    _write(catalog, rows)
    rejects = tmp_path / "rejects.jsonl"
    assert main(["index", "--catalog", str(catalog), "--rejects", str(rejects)]) == 0
    out = capsys.readouterr().out
    assert "indexed 3 items" in out and "rejected 3" in out and "duplicate ids 1" in out
    lines = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [r["line"] for r in lines] == [2, 3, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "not found"), ("", "empty")],
)
def test_missing_or_empty_catalog_is_one_line(tmp_path, capsys, content, message):
    catalog = tmp_path / "c.jsonl"
    if content is not None:
        catalog.write_text(content)
    assert main(["index", "--catalog", str(catalog)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_ask_before_index_is_one_line(capsys):
    assert main(["ask", "hello", "--no-reasons"]) == 2
    err = capsys.readouterr().err.strip()
    assert "recochat index" in err and "\n" not in err


def test_bad_config_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "recochat.toml").write_text("[retrieval]\ndiversity = 3\n")
    assert main(["ask", "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert "diversity" in err and "\n" not in err
