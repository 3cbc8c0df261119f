"""Read and write dialogue files: our JSONL schema and the ReDial/OpenDialKG processed files.

`load_rec_turns` reads recommender turns directly; `load_dialogues` rebuilds whole dialogues.
Malformed lines never stop a load: each becomes a `Reject` (line number, reason, raw text).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dialogues.schema import FORMATS, Dialogue, DialogueFormat, RecItem, RecTurn, Turn
from retrieval.errors import RetrievalError
from retrieval.types import Reject

log = logging.getLogger(__name__)

_RAW_MAX = 500  # chars of a rejected line kept in the Reject, enough to find it


class _Bad(ValueError):
    """A line that does not fit the schema; the message is the Reject reason."""


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    p = Path(path)
    if not p.is_file():
        raise RetrievalError(f"dialogue file {p} not found: pass an existing file")
    # errors="replace": a stray bad byte must not abort a whole load; the line is judged alone.
    with p.open(encoding="utf-8", errors="replace") as fh:
        for no, line in enumerate(fh, start=1):
            if line.strip():
                yield no, line.rstrip("\n")


def _parse(no: int, line: str, rejects: list[Reject]) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        rejects.append(Reject(no, f"bad JSON: {exc.msg}", line[:_RAW_MAX]))
        return None
    if not isinstance(obj, dict):
        rejects.append(Reject(no, "not a JSON object", line[:_RAW_MAX]))
        return None
    return obj


def _get(obj: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in obj:
        if default is ...:
            raise _Bad(f"missing key '{key}'")
        return default
    value = obj[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _Bad(f"'{key}' has the wrong type (bool)")
    if not isinstance(value, types):
        raise _Bad(f"'{key}' has the wrong type ({type(value).__name__})")
    return value


def _str_list(obj: dict[str, Any], key: str, default: Any = ...) -> list[str]:
    value = _get(obj, key, list, default)
    if not all(isinstance(v, str) for v in value):
        raise _Bad(f"'{key}' must be a list of strings")
    return list(value)


def _dialog_id(obj: dict[str, Any]) -> str:
    # OpenDialKG ids are ints; ours are strings. Both become strings.
    return str(_get(obj, "dialog_id", (str, int)))


def _processed_context(context: list[str]) -> list[str]:
    return context[1:] if context and context[0] == "" else context


def _rec_turn_from_processed(obj: dict[str, Any]) -> RecTurn:
    dialog_id = _dialog_id(obj)
    turn_id = _get(obj, "turn_id", int)
    context = _processed_context(_str_list(obj, "context"))
    entity = _str_list(obj, "entity")
    rec = _str_list(obj, "rec")
    resp = _get(obj, "resp", str)
    return RecTurn(
        dialog_id=dialog_id,
        turn_id=turn_id,
        context=tuple(context),
        mentioned=tuple(entity),
        gold=tuple(rec),
        response=resp,
        accepted=(None,) * len(rec),
    )


def _dialogue_from_obj(obj: dict[str, Any]) -> Dialogue:
    dialog_id = _dialog_id(obj)
    source = _get(obj, "source", str, "")
    raw_turns = _get(obj, "turns", list)
    turns: list[Turn] = []
    for i, t in enumerate(raw_turns):
        if not isinstance(t, dict):
            raise _Bad(f"turn {i} is not an object")
        try:
            role = _get(t, "role", str)
            if role not in ("user", "assistant"):
                raise _Bad(f"'role' must be 'user' or 'assistant', not {role!r}")
            text = _get(t, "text", str)
            recs: list[RecItem] = []
            for r in _get(t, "recommended", list, []):
                if not isinstance(r, dict):
                    raise _Bad("a recommended entry is not an object")
                title = _get(r, "title", str)
                item_id = _get(r, "item_id", (str, type(None)), None)
                accepted = _get(r, "accepted", (bool, type(None)), None)
                recs.append(RecItem(title=title, item_id=item_id, accepted=accepted))
            mentioned = _str_list(t, "mentioned", [])
        except _Bad as exc:
            raise _Bad(f"turn {i}: {exc}") from None
        turns.append(Turn(role=role, text=text, recommended=recs, mentioned=mentioned))
    return Dialogue(dialog_id=dialog_id, source=source, turns=turns)


def rec_turns_of(dialogue: Dialogue) -> list[RecTurn]:
    """Each assistant turn that recommends something, with what was said and mentioned before."""
    out: list[RecTurn] = []
    context: list[str] = []
    mentioned: list[str] = []
    seen: set[str] = set()
    for i, turn in enumerate(dialogue.turns):
        if turn.role == "assistant" and turn.recommended:
            out.append(
                RecTurn(
                    dialog_id=dialogue.dialog_id,
                    turn_id=i,
                    context=tuple(context),
                    mentioned=tuple(mentioned),
                    gold=tuple(r.title for r in turn.recommended),
                    response=turn.text,
                    accepted=tuple(r.accepted for r in turn.recommended),
                    gold_ids=tuple(r.item_id for r in turn.recommended),
                )
            )
        context.append(turn.text)
        for title in [*turn.mentioned, *(r.title for r in turn.recommended)]:
            if title not in seen:
                seen.add(title)
                mentioned.append(title)
    return out


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise RetrievalError(f"unknown dialogue format {fmt!r}: use one of {', '.join(FORMATS)}")


def _write_rejects(rejects: Sequence[Reject], path: str | os.PathLike[str] | None) -> None:
    if rejects:
        log.warning("skipped %d malformed dialogue line(s)", len(rejects))
    if path is None:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for r in rejects:
            fh.write(json.dumps({"line": r.line, "reason": r.reason, "raw": r.raw}) + "\n")


def load_rec_turns(
    path: str | os.PathLike[str],
    fmt: DialogueFormat,
    rejects_path: str | os.PathLike[str] | None = None,
) -> tuple[list[RecTurn], list[Reject]]:
    """All recommender turns of a file, plus the lines that were skipped and why.

    `redial`/`opendialkg`: one processed line per turn (lines with an empty `rec` are skipped
    silently, they are not recommender turns). `jsonl`: our schema; each assistant turn with
    recommended items is a turn. `rejects_path`, if given, receives the rejects as JSONL.
    """
    _check_format(fmt)
    turns: list[RecTurn] = []
    rejects: list[Reject] = []
    for no, line in _lines(path):
        obj = _parse(no, line, rejects)
        if obj is None:
            continue
        try:
            if fmt == "jsonl":
                turns.extend(rec_turns_of(_dialogue_from_obj(obj)))
            else:
                turn = _rec_turn_from_processed(obj)
                if turn.gold:
                    turns.append(turn)
        except _Bad as exc:
            rejects.append(Reject(no, str(exc), line[:_RAW_MAX]))
    _write_rejects(rejects, rejects_path)
    return turns, rejects


def read_dialogues(
    path: str | os.PathLike[str], fmt: DialogueFormat
) -> tuple[list[Dialogue], list[Reject]]:
    """Whole dialogues and rejects; processed formats are rebuilt from their turn lines."""
    _check_format(fmt)
    rejects: list[Reject] = []
    if fmt == "jsonl":
        dialogues: list[Dialogue] = []
        for no, line in _lines(path):
            obj = _parse(no, line, rejects)
            if obj is None:
                continue
            try:
                dialogues.append(_dialogue_from_obj(obj))
            except _Bad as exc:
                rejects.append(Reject(no, str(exc), line[:_RAW_MAX]))
        return dialogues, rejects
    groups: dict[str, list[RecTurn]] = {}
    for no, line in _lines(path):
        obj = _parse(no, line, rejects)
        if obj is None:
            continue
        try:
            turn = _rec_turn_from_processed(obj)
        except _Bad as exc:
            rejects.append(Reject(no, str(exc), line[:_RAW_MAX]))
            continue
        groups.setdefault(turn.dialog_id, []).append(turn)
    return [_rebuild(did, ts, fmt) for did, ts in groups.items()], rejects


def _rebuild(dialog_id: str, lines: list[RecTurn], source: str) -> Dialogue:
    longest = max(lines, key=lambda t: len(t.context))
    texts = [*longest.context, longest.response]
    # The utterance just before a recommender turn is the seeker's; roles alternate backwards.
    n = len(texts)
    turns = [
        Turn(role="assistant" if (n - 1 - i) % 2 == 0 else "user", text=text)
        for i, text in enumerate(texts)
    ]
    seen: set[str] = set()
    for line in sorted(lines, key=lambda t: len(t.context)):
        pos = len(line.context)  # index of this line's response in the rebuilt dialogue
        if pos < n and turns[pos].role == "assistant" and line.gold:
            turns[pos].recommended = [RecItem(title=title) for title in line.gold]
        new = [e for e in line.mentioned if e not in seen]
        seen.update(new)
        if new and pos > 0:
            turns[pos - 1].mentioned = [*turns[pos - 1].mentioned, *new]
    return Dialogue(dialog_id=dialog_id, source=source, turns=turns)


def load_dialogues(path: str | os.PathLike[str], fmt: DialogueFormat) -> list[Dialogue]:
    """Whole dialogues; malformed lines are logged (count) and skipped."""
    dialogues, rejects = read_dialogues(path, fmt)
    _write_rejects(rejects, None)
    return dialogues


def dump_dialogues(dialogues: Iterable[Dialogue], path: str | os.PathLike[str]) -> None:
    """Write dialogues as our JSONL, atomically (a reader never sees half a file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for d in dialogues:
            fh.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
    os.replace(tmp, p)
