"""log P(title | conversation) under the default LLM as a ranking signal, on ReDial dev (or test).

    RECOCHAT_HOME=runs/home-redial RECOCHAT_CONFIG=configs/redial.toml PYTHONPATH=$PWD \
        python benchmarks/title_likelihood.py \
        --redial ../shared/data/redial --split dev --top 50 --cache /tmp/cf/prepared-dev.pkl \
        --json runs/title_likelihood-dev.json

Issue #17 asks whether the LLM's likelihood of a title after the conversation helps ranking.
For each scored turn, today's retrieval (the configured weighted RRF, as
`benchmarks/learned_ranking.py` computes it) gives a ranking; its top `--top` items are scored
by the LLM: the summed (`sum`) or per-token (`mean`) log-probability of `<title (year)>"`
after a chat prompt that shows the conversation's last utterances and opens the answer with
`I recommend "`. The rows:
- today's retrieval;
- the LLM score alone, reordering that top `--top` (the rest follows in retrieval order);
- RRF fusions of retrieval and the LLM score, for each normalisation and weight of a grid.
The fusion weight and normalisation are chosen on DEV (R@10, then NDCG@10); `--split test`
scores that one choice on the test turns, once. Every row carries a paired bootstrap 95%
interval by dialogue of its difference from today's retrieval. Since only the top `--top` is
reordered, R@50 is unchanged for `--top 50`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

PROMPT_UTTERANCES = 6  # the conversation's last utterances shown to the LLM
WEIGHTS = (0.25, 0.5, 1.0, 2.0)  # the LLM signal's RRF weight; retrieval's is 1
NORMS = ("sum", "mean")


def display_title(item: Any) -> str:
    year = item.metadata.get("year")
    if year and f"({year})" not in item.title:
        return f"{item.title} ({year})"
    return item.title


def prompt_ids(tokenizer: Any, context: tuple[str, ...]) -> list[int]:
    lines = "\n".join(f"- {u}" for u in context[-PROMPT_UTTERANCES:] if u.strip())
    messages = [
        {"role": "system", "content": "You recommend movies."},
        {
            "role": "user",
            "content": f"Here is a conversation about movies:\n{lines}\n"
            "Which movie should the recommender suggest next?",
        },
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text + 'I recommend "', add_special_tokens=False)


def title_scores(model: Any, tokenizer: Any, prefix: list[int], titles: list[str]) -> Any:
    """(summed, per-token) log P(title + '"' | prefix) for each title: the prefix runs once."""
    import torch

    rows = [tokenizer.encode(t + '"', add_special_tokens=False) for t in titles]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    with torch.inference_mode():
        out = model(torch.tensor([prefix]), use_cache=True)
        first = out.logits[0, -1].float().log_softmax(-1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(len(rows))
        attention = torch.cat([torch.ones((len(rows), len(prefix)), dtype=torch.long), mask], 1)
        logp = model(ids, past_key_values=cache, attention_mask=attention).logits.float()
        logp = logp.log_softmax(-1)
    total = first[ids[:, 0]].clone()
    if width > 1:
        nxt = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]
        total += nxt.sum(-1)
    lengths = mask.sum(-1).float()
    return total.tolist(), (total / lengths).tolist()


def fuse(base: list[str], scores: dict[str, float], top: int, weight: float | None) -> list[str]:
    """Retrieval's top `top` reordered by the LLM score (weight None) or by an RRF of both."""
    from retrieval.ranking_features import rrf_order, weighted_rrf

    head = base[:top]
    llm = sorted(head, key=lambda i: (-scores[i], i))
    if weight is None:
        return llm + base[top:]
    fused = rrf_order(weighted_rrf({"rrf": head, "llm": llm}, {"rrf": 1.0, "llm": weight}, top))
    return fused + base[top:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redial", type=Path, default=Path("../shared/data/redial"))
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--top", type=int, default=50, help="retrieval's top N the LLM reorders")
    ap.add_argument("--limit", type=int, default=0, help="dev/test turns (train: 3x); 0 = all")
    ap.add_argument("--cache", type=Path, help="pickle of the prepared signals (learned_ranking)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    opts = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not opts.redial.is_dir():
        print(f"error: {opts.redial} not found: pass --redial to the shared ReDial data")
        return 2
    import pickle

    from benchmarks.learned_ranking import Scorer, load_cache, rrf_rankings, setup
    from chatbot.config import load_settings
    from finetune.ranker_fit import RankerData
    from inference.model_files import load_base_model

    s = setup(opts)
    data = load_cache(opts.cache, s["turns"], s["k_retrieve"])
    if data is None:
        data = RankerData.build(
            s["rec"], s["store"], s["turns"], s["split"],
            title_ids=s["title_ids"], depth=s["k_retrieve"], progress_every=200,
        )  # fmt: skip
        if opts.cache:
            opts.cache.write_bytes(pickle.dumps((len(s["turns"]), data)))
    dev, target = Scorer(data, s, "dev"), Scorer(data, s, opts.split)
    settings = load_settings()
    model, tokenizer = load_base_model(settings.llm, settings.model_cache)
    model.eval()
    items = {it.item_id: it for it in s["items"]}

    def llm_scores(scorer: Scorer) -> tuple[list[list[str]], list[dict[str, dict[str, float]]]]:
        bases = rrf_rankings(data, scorer.rows, s["weights"], s["k_retrieve"])
        out, t0 = [], time.perf_counter()
        for n, (row, base) in enumerate(zip(scorer.rows, bases, strict=True), 1):
            head = base[: opts.top]
            prefix = prompt_ids(tokenizer, s["turns"][row].context)
            total, mean = title_scores(
                model, tokenizer, prefix, [display_title(items[i]) for i in head]
            )
            out.append(
                {
                    "sum": dict(zip(head, total, strict=True)),
                    "mean": dict(zip(head, mean, strict=True)),
                }
            )
            if n % 50 == 0:
                logging.warning(
                    "scored %d/%d turns (%.0fs)", n, len(bases), time.perf_counter() - t0
                )
        return bases, out

    def rows_for(scorer: Scorer, bases, scores, configs) -> dict[str, Any]:
        base = scorer.score(bases)
        table = {"retrieval": {**scorer.summary(base)}}
        for norm, weight in configs:
            name = f"llm {norm}" + ("" if weight is None else f" rrf w={weight}")
            ranked = [
                fuse(b, sc[norm], opts.top, weight) for b, sc in zip(bases, scores, strict=True)
            ]
            got = scorer.score(ranked)
            table[name] = {**scorer.summary(got), **scorer.versus(got, base)}
        return table

    t0 = time.perf_counter()
    grid = [(norm, w) for norm in NORMS for w in (None, *WEIGHTS)]
    dev_bases, dev_scores = llm_scores(dev)
    dev_table = rows_for(dev, dev_bases, dev_scores, grid)
    fused = [(n, w) for n, w in grid if w is not None]
    chosen = max(
        fused,
        key=lambda c: (
            dev_table[f"llm {c[0]} rrf w={c[1]}"]["R@10"],
            dev_table[f"llm {c[0]} rrf w={c[1]}"]["NDCG@10"],
        ),
    )
    report: dict[str, Any] = {"top": opts.top, "dev": dev_table, "chosen_on_dev": list(chosen)}
    if opts.split == "test":
        bases, scores = llm_scores(target)
        report["test"] = rows_for(target, bases, scores, [(chosen[0], None), chosen])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    for split in ("dev", "test"):
        for name, row in report.get(split, {}).items():
            ci = row.get("R@10_diff_ci95")
            extra = f"  dR@10 {ci}" if ci else ""
            print(
                f"{split} {name:24s} R@10 {row['R@10']:.3f} R@50 {row['R@50']:.3f} NDCG@10 {row['NDCG@10']:.3f}{extra}"
            )
    print("chosen on dev:", chosen)
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
