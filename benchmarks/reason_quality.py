"""Card reason quality on held-out ReDial turns: unsupported facts, shapes, links, length.

    PYTHONPATH=$PWD python benchmarks/reason_quality.py \\
        --dialogues ../shared/data/redial/valid_data_processed.jsonl \\
        --catalog ../shared/data/redial/id2info.json --split test --out runs/reason_quality.json

For each turn of the split (by dialogue, `split_of`), the cards are the turn's gold items (what
the human recommender picked) filled up to `--k` with catalog items drawn at random (seeded):
the reasons depend on the item, the user's words and the item's link to the seeds, not on how
it was ranked. Seeds are the items the dialogue mentioned before the turn, most recent first;
links use collaborative signals learnt from the train split only, as `recochat eval` does.
A reason is unsupported when `chatbot.reply.reason_checks.unsupported_claims` flags it against the item's
record plus what the eval allows (`EvalTurn.reason_support`: the seeker's words and the records
of the items the dialogue mentioned), the check behind `reason_unsupported_rate` in
`recochat eval`. The old template reasons (`chatbot.reply.reasons.template_reasons`) run on the same
cards for comparison.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from chatbot.reply.card_reasons import card_reasons
from chatbot.reply.credit_links import find_link
from chatbot.reply.reason_checks import unsupported_claims
from chatbot.reply.reasons import template_reasons
from dialogues.importers import load_rec_turns
from dialogues.split import split_turns
from evaluation.protocol import resolve_turn, user_words
from retrieval.catalog import load_catalog
from retrieval.collab import CollabSignals
from retrieval.titles import TitleIndex


def checker_artifact(claim: str, item) -> bool:
    """A claim the checker flags although the record states it verbatim: a hyphenated genre
    the record lists ("sci-fi": the checker splits the record's words at hyphens, not the
    claim's) or a number with a thousands comma ("$100,000") written so in the record."""
    return claim.lower() in item.genres or ("," in claim and claim in item.text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dialogues", type=Path, required=True)
    p.add_argument("--format", default="redial")
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("--catalog-format", default="redial")
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=5, help="cards per turn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    items = load_catalog(args.catalog, args.catalog_format).items
    by_id = {it.item_id: it for it in items}
    titles = TitleIndex(items)
    turns, _ = load_rec_turns(args.dialogues, args.format)
    train = split_turns(turns, "train")
    names = {n for t in train for n in (*t.gold, *t.mentioned)}
    collab = CollabSignals.from_turns(
        train, {n: i for n in names if (i := titles.lookup(n)) is not None}
    )
    held_out = split_turns(turns, args.split)
    rng = random.Random(args.seed)
    pool = sorted(by_id)
    stats: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    examples = []
    for turn in held_out:
        ev = resolve_turn(turn, titles)
        cards = [by_id[g] for g in ev.gold if g in by_id]
        while len(cards) < args.k:
            extra = by_id[rng.choice(pool)]
            if extra not in cards and extra.item_id not in ev.mentioned:
                cards.append(extra)
        cards = cards[: args.k]
        mentioned = [i for t in reversed(turn.mentioned) if (i := titles.lookup(t)) in by_id]
        seeds = [by_id[i] for i in dict.fromkeys(mentioned)][:10]
        links = [find_link(it, seeds, collab) for it in cards]
        words = user_words(turn.context)
        support = ev.reason_support(by_id)
        new = card_reasons(cards, words, links)
        old = template_reasons(cards, words, links=links)
        stats["turns"] += 1
        stats["turns_with_repeated_shape"] += len({r.shape for r in new}) < len(new)
        for item, r, o in zip(cards, new, old, strict=True):
            bad = unsupported_claims(r.text, item, support)
            stats["reasons"] += 1
            stats["unsupported"] += bool(bad)
            stats["unsupported_artifacts_only"] += bool(bad) and all(
                checker_artifact(c, item) for c in bad
            )
            stats["old_unsupported"] += bool(unsupported_claims(o.text, item, support))
            stats["with_link"] += r.link is not None
            stats["with_description"] += "plot" in r.shape
            stats["words"] += len(r.text.split())
            shapes[r.shape] += 1
            if bad or len(examples) < 10:
                examples.append({"title": item.title, "reason": r.text, "unsupported": bad})
    n = stats["reasons"] or 1
    result = {
        "split": args.split,
        "turns": stats["turns"],
        "reasons": stats["reasons"],
        "unsupported_rate": stats["unsupported"] / n,
        "unsupported_rate_without_checker_artifacts": (
            stats["unsupported"] - stats["unsupported_artifacts_only"]
        )
        / n,
        "old_template_unsupported_rate": stats["old_unsupported"] / n,
        "turns_with_repeated_shape": stats["turns_with_repeated_shape"],
        "link_rate": stats["with_link"] / n,
        "description_rate": stats["with_description"] / n,
        "mean_words": stats["words"] / n,
        "shapes": dict(shapes.most_common()),
        "examples": examples[:40],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        "| reasons | unsupported | unsupported, checker artifacts excluded "
        "| old template unsupported | turns with a repeated shape | with link "
        "| from description | mean words |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {result['reasons']} | {result['unsupported_rate']:.2%} | "
        f"{result['unsupported_rate_without_checker_artifacts']:.2%} | "
        f"{result['old_template_unsupported_rate']:.2%} | {result['turns_with_repeated_shape']} | "
        f"{result['link_rate']:.0%} | {result['description_rate']:.0%} | "
        f"{result['mean_words']:.1f} |"
    )


if __name__ == "__main__":
    main()
