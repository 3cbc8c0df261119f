"""Turn latency with the streamed LLM reply: ranked cards, first reply token, whole turn.

    PYTHONPATH=$PWD python benchmarks/reply_latency.py --home /tmp/reply-latency \\
        --out runs/reply_latency.json [--catalog ../shared/data/redial/id2info.json \\
        --catalog-format redial] [--adapter runs/reply-adapter]

The catalog (default: the bundled demo one) is indexed into `--home` once. Each scripted turn
runs the served recommender (template card reasons: no reason LLM time) and then streams the
reply with `chatbot.reply.writer.ReplyWriter` over the turn's picks, as phase B wires it. Times
are from the start of the turn: `first_rec` (cards ready), `first_reply_token`, `turn` (reply
done). Measure on a quiet machine: the record carries the load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # before torch loads: see inference/linear_packing.py

CONVERSATIONS = [
    ["hi", "something funny for a family night", "thanks, anything animated?"],
    ["a tense heist movie like Heat", "less violent please", "from after 2000"],
    ["I loved The Matrix", "more sci-fi with a twist", "what about something older?"],
    ["a scary movie for tonight", "not too gory", "like The Shining"],
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--catalog", type=Path)
    p.add_argument("--catalog-format")
    p.add_argument("--adapter", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    from chatbot.config import Settings
    from chatbot.indexing import index_catalog, open_store
    from chatbot.reply.reply_prompt import ReplyInput, should_ask
    from chatbot.reply.writer import ReplyWriter
    from chatbot.turn import Recommender
    from chatbot.understanding.state import DialogueState
    from inference.llm import load_llm
    from retrieval.catalog import demo_catalog_path

    settings = Settings(home=args.home, reasons=False)
    if args.adapter:
        llm_settings = settings.llm.model_copy(update={"adapter": args.adapter})
        settings = settings.model_copy(update={"llm": llm_settings})
    store = open_store(settings)
    if store.count() == 0:
        index_catalog(settings, args.catalog or demo_catalog_path(), fmt=args.catalog_format,
                      progress=False, store=store)  # fmt: skip
    llm = load_llm(settings.llm, settings.model_cache)
    rec = Recommender(settings, store, llm)
    rec.cache_prompt_heads()
    index, _ = rec.catalog()
    writer = ReplyWriter(llm, index)
    writer.cache_head()
    load_start = os.getloadavg()
    rows = []
    for conversation in CONVERSATIONS:
        state = DialogueState()
        for message in conversation:
            t0 = time.perf_counter()
            result = rec.recommend(state, message)
            first_rec = time.perf_counter() - t0
            items = {
                it.item_id: it for it in rec.store.get([r.item_id for r in result.recommendations])
            }
            user_titles = tuple(state.titles[i] for i in state.mentioned if i in state.titles)
            user_texts = [t for r, t in state.history if r == "user"]
            inp = ReplyInput(
                history=tuple(state.history[:-1]),  # the template reply the turn added is replaced
                picks=tuple(items[r.item_id] for r in result.recommendations if r.item_id in items),
                user_titles=user_titles,
                ask=should_ask(user_texts, user_titles),
            )
            first_token = None
            for event in writer.stream(inp):
                if event.text and first_token is None:
                    first_token = time.perf_counter() - t0
                if event.reply is not None:
                    reply = event.reply
            turn = time.perf_counter() - t0
            rows.append({
                "message": message, "first_rec_s": first_rec,
                "first_reply_token_s": first_token if first_token is not None else turn,
                "turn_s": turn, "reply": reply.text, "fallback": reply.fallback,
                "model_text": reply.model_text,
            })  # fmt: skip
    summary = {
        key: statistics.median(r[key] for r in rows)
        for key in ("first_rec_s", "first_reply_token_s", "turn_s")
    }
    record = {
        "catalog": str(args.catalog or "demo"),
        "adapter": str(args.adapter) if args.adapter else None,
        "turns": len(rows),
        "p50": summary,
        "fallback_rate": sum(r["fallback"] for r in rows) / len(rows),
        "loadavg": {"start": load_start, "end": os.getloadavg()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print("| turns | first rec p50 | first reply token p50 | whole turn p50 | reply fallbacks |")
    print("|---|---|---|---|---|")
    print(
        f"| {len(rows)} | {summary['first_rec_s']:.2f} s | {summary['first_reply_token_s']:.2f} s "
        f"| {summary['turn_s']:.2f} s | {record['fallback_rate']:.0%} |"
    )


if __name__ == "__main__":
    main()
