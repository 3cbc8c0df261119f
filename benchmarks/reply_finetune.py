"""Reply writer, untuned against tuned, on held-out ReDial dialogues, in one run.

    PYTHONPATH=$PWD python benchmarks/reply_finetune.py \\
        --dialogues ../shared/data/redial/valid_data_processed.jsonl \\
        --catalog ../shared/data/redial/id2info.json --adapter runs/reply-adapter \\
        --limit 16 --ppl-limit 48 --out runs/reply_finetune.json

Turns come from the test split (by dialogue, `split_of`), as reply examples
(`finetune.reply_examples.usable_reply`: the served prompt; responses serving could not write,
naming a title that is neither a pick nor the user's, or over the token budget, are left out).
`--limit` turns (whole dialogues, seeded) get a model reply from each model, written by the
served `ReplyWriter` (constrained decoding + checks); `--ppl-limit` turns score perplexity.

- perplexity: of the real response tokens given the served prompt (lower is better);
- BLEU-2: sacrebleu `BLEU(max_ngram_order=2)` of the model's replies against the real ones;
- Distinct-2: distinct word bigrams over all bigrams of the model's replies;
- grounded titles: catalog titles named in the model's replies that the turn allows (picks,
  the user's titles), over all titles they name; ungrounded titles served must be 0;
- survive checks: model replies served as written (the rest fall back to the template).

Replies are decoded with the served title-span constraint (`chatbot.reply.title_constraint`):
titles whole and allowed only, a pick forced in when none is named after a few tokens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from chatbot.config import Settings
from chatbot.reply.reply_prompt import ReplyInput, reply_prompt
from chatbot.reply.writer import ReplyWriter
from chatbot.understanding.mentions import MentionFinder
from dialogues.importers import load_rec_turns
from dialogues.split import split_turns
from evaluation.conversation import bleu_2, distinct_2, perplexity, title_counts
from evaluation.protocol import sample_by_dialogue
from finetune.examples import Catalog
from finetune.reply_examples import ReplyExampleStats, usable_reply
from inference.llm import load_llm
from inference.settings import LLMSettings
from retrieval.catalog import load_catalog

log = logging.getLogger("reply_finetune")


def evaluate(
    llm: Any, index: MentionFinder, gen: list[tuple[ReplyInput, str]], ppl: list[tuple[str, str]],
    batch: int,
) -> dict[str, Any]:  # fmt: skip
    writer = ReplyWriter(llm, index)
    started = time.perf_counter()
    replies = []
    for start in range(0, len(gen), batch):
        replies += writer.write_many([inp for inp, _ in gen[start : start + batch]])
        log.info("%d/%d replies, %.0f s", len(replies), len(gen), time.perf_counter() - started)
    gen_s = time.perf_counter() - started
    model_texts = [r.model_text.strip() or "" for r in replies]
    refs = [resp for _, resp in gen]
    named, grounded, served_ungrounded = title_counts([i for i, _ in gen], replies, index)
    problems: dict[str, int] = {}
    for r in replies:
        for p in r.problems:
            key = p if p.startswith("<") else "<unsupported fact>"
            problems[key] = problems.get(key, 0) + 1
    return {
        "perplexity": perplexity(llm, ppl),
        "bleu2": bleu_2(model_texts, refs),
        "distinct2": distinct_2(model_texts),
        "grounded_title_rate": grounded / named if named else None,
        "titles_named": named,
        "served_ungrounded_titles": served_ungrounded,
        "survive_checks": sum(not r.fallback for r in replies) / len(replies) if replies else None,
        "problems": problems,
        "generate_s_per_reply": gen_s / max(len(replies), 1),
        "samples": [
            {"reference": ref, "model": r.model_text, "served": r.text, "fallback": r.fallback}
            for ref, r in list(zip(refs, replies, strict=True))[:12]
        ],
        "fallbacks": [
            {"model": r.model_text, "problems": r.problems} for r in replies if r.fallback
        ],
        "survived": [not r.fallback for r in replies],  # per generated turn, in run order
    }


def _paired(results: dict[str, Any], dialogues: list[str]) -> dict[str, Any]:
    """Each later model's survive rate minus the first's, with its 95% bootstrap interval by
    dialogue (the same turns for every model)."""
    from evaluation.paired import mean_diff_ci

    names = list(results)
    first = results[names[0]]["survived"]
    out = {}
    for name in names[1:]:
        other = results[name]["survived"]
        low, high = mean_diff_ci(other, first, dialogues)
        out[f"{name} - {names[0]}"] = {
            "diff": round((sum(other) - sum(first)) / len(first), 3),
            "ci95": [round(low, 3), round(high, 3)],
            "only_first": sum(a and not b for a, b in zip(first, other, strict=True)),
            "only_other": sum(b and not a for a, b in zip(first, other, strict=True)),
        }
    return out


def _models(spec: str, adapter: Path | None, parser) -> dict[str, LLMSettings]:
    """The named models of `--models`, as the LLM settings each is loaded with."""
    out = {}
    for name in filter(None, (x.strip() for x in spec.split(","))):
        base, _, weights = name.partition("+")
        if base not in ("untuned", "tuned") or weights not in ("", "int4"):
            parser.error(f"unknown model {name!r} in --models: use untuned, tuned, untuned+int4")
        if base == "tuned" and adapter is None:
            parser.error("--models names 'tuned': pass --adapter DIR")
        out[name] = LLMSettings(
            adapter=adapter if base == "tuned" else None, decode_weights=weights or "bf16"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dialogues", type=Path, required=True)
    p.add_argument("--format", default="redial")
    p.add_argument("--catalog", type=Path, required=True)
    p.add_argument("--catalog-format", default="redial")
    p.add_argument("--adapter", type=Path, default=None, help="the tuned reply adapter")
    p.add_argument(
        "--models",
        default="untuned,tuned",
        help="comma-separated: untuned, tuned (needs --adapter); +int4 decodes from 4-bit "
        "weights (llm.decode_weights), e.g. untuned,untuned+int4",
    )
    p.add_argument("--limit", type=int, default=48, help="test turns given model replies")
    p.add_argument("--ppl-limit", type=int, default=200, help="test turns scored for perplexity")
    p.add_argument("--batch", type=int, default=8, help="replies per progress line")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--exclude",
        default="",
        help="SEED:LIMIT,...[;SEED:LIMIT,...] the samples of earlier runs, left out of this "
        "one (what their failures taught is then not scored on them); groups after ';' were "
        "drawn from what the groups before left",
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    models = _models(args.models, args.adapter, p)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    settings = Settings()
    items = load_catalog(args.catalog, args.catalog_format).items
    catalog, index = Catalog(items), MentionFinder.of(items)
    turns, _ = load_rec_turns(args.dialogues, args.format)
    test = split_turns(turns, "test")
    stats = ReplyExampleStats(turns=len(test))
    keyed = [(t, u) for t in test if (u := usable_reply(t, catalog, index, stats)) is not None]
    for group in filter(None, args.exclude.split(";")):  # in order: each run saw what was left
        spent = set()
        for part in filter(None, group.split(",")):
            seed, limit = (int(x) for x in part.split(":"))
            sample = sample_by_dialogue([t for t, _ in keyed], limit, seed)
            spent |= {t.dialog_id for t in sample}  # whole dialogues, as they were sampled
        keyed = [(t, u) for t, u in keyed if t.dialog_id not in spent]
    gen_keys = {
        (t.dialog_id, t.turn_id)
        for t in sample_by_dialogue([t for t, _ in keyed], args.limit, args.seed)
    }
    ppl_keys = {
        (t.dialog_id, t.turn_id)
        for t in sample_by_dialogue([t for t, _ in keyed], args.ppl_limit, args.seed)
    }
    gen = [u for t, u in keyed if (t.dialog_id, t.turn_id) in gen_keys]
    gen_dialogues = [t.dialog_id for t, _ in keyed if (t.dialog_id, t.turn_id) in gen_keys]
    load_before = os.getloadavg()
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name, llm_settings in models.items():
        llm = load_llm(llm_settings, settings.model_cache)
        ppl = [(reply_prompt(llm, inp), resp) for t, (inp, resp) in keyed
               if (t.dialog_id, t.turn_id) in ppl_keys]  # fmt: skip
        results[name] = evaluate(llm, index, gen, ppl, args.batch)
        del llm
    record = {
        "split": "test",
        "test_turns": len(test),
        "usable_turns": len(keyed),
        "skipped": stats.to_dict(),
        "excluded": args.exclude,
        "n_generated": len(gen),
        "n_perplexity": len(ppl_keys),
        "adapter": str(args.adapter),
        "models": {
            k: v.model_dump(mode="json", include={"adapter", "decode_weights"})
            for k, v in models.items()
        },  # fmt: skip
        "decoding": "title-span constraint (chatbot.reply.title_constraint) + reply_checks",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_start": [round(x, 2) for x in load_before],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
        "results": results,
        "survive_paired": _paired(results, gen_dialogues),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"Held-out ReDial test dialogues: {len(gen)} turns generated, {len(ppl_keys)} scored.\n")
    print("| model | perplexity ↓ | BLEU-2 | Distinct-2 | grounded titles | survive checks |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        g = r["grounded_title_rate"]
        print(
            f"| {name} | {r['perplexity']:.1f} | {r['bleu2']:.1f} | {r['distinct2']:.2f} | "
            f"{'n/a' if g is None else f'{g:.0%}'} ({r['titles_named']}) | "
            f"{r['survive_checks']:.0%} |"
        )

    for pair, d in record["survive_paired"].items():
        print(f"survive checks, {pair}: {d['diff']:+.3f} {d['ci95']} (paired by dialogue)")


if __name__ == "__main__":
    main()
