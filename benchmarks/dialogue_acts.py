"""Dialogue-act accuracy on the labelled ReDial seeker utterances (dev and held-out test).

    python benchmarks/dialogue_acts.py \
        --redial ../shared/data/redial/valid_data_processed.jsonl --out runs/dialogue_acts.json
    python benchmarks/dialogue_acts.py --redial ... --method mix   # rules + nearest exemplars
    python benchmarks/dialogue_acts.py --redial ... --method llm --splits dev   # LLM label scores
    python benchmarks/dialogue_acts.py --redial ... --splits dev,test1,test2    # per label round

Labels: evaluation/data/dialogue_acts.jsonl (keys + acts; the text is joined from --redial).
Splits by dialogue (`split_of`): rules and exemplars were written on train, chosen on dev;
test is held out. Prints accuracy, per-act recall, the confusion and latency per message, and
the hand-written synthetic product-style messages' accuracy separately (not ReDial text).
Methods: rules (the served cheap path), emb (nearest exemplars only), mix (rules, unsure ones
to the exemplars), llm (the default LLM scores the eight act letters, prompts/dialogue_act_llm.txt).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from pathlib import Path

from chatbot.understanding.acts import (
    ACTS,
    Act,
    ActClassifier,
    ExemplarActs,
    TurnContext,
    load_lexicon,
    normalize,
    slot_of,
)
from evaluation.act_labels import load_labelled, load_synthetic, turn_context

LETTERS = "ABCDEFGH"  # prompts/dialogue_act_llm.txt lists the acts in ACTS order


def build(method: str):
    lex = load_lexicon()
    if method == "rules":
        clf = ActClassifier(lex)
        return lex, clf.classify
    if method in ("emb", "mix"):
        from retrieval.embeddings import load_embedder

        clf = ActClassifier(lex, ExemplarActs(load_embedder(), lex), threshold=0.6)
        if method == "emb":
            clf.threshold = 2.0  # every message goes to the exemplars
        return lex, clf.classify
    if method == "llm":
        return lex, _llm_classifier(lex)
    raise SystemExit(f"error: unknown --method {method!r}: use rules, emb, mix or llm")


def _llm_classifier(lex):
    import os
    import tempfile

    from langchain_core.prompts import PromptTemplate

    import prompts
    from inference.llm import load_llm
    from inference.settings import LLMSettings

    template = PromptTemplate.from_template(
        (Path(prompts.__file__).parent / "dialogue_act_llm.txt").read_text(encoding="utf-8")
    )
    cache = Path(os.environ.get("RECOCHAT_MODEL_CACHE", tempfile.mkdtemp(prefix="acts-llm-")))
    llm = load_llm(LLMSettings(), cache)
    labels = list(LETTERS)

    def classify(text: str, ctx: TurnContext, previous: str = "") -> Act:
        prompt = llm.chat_prompt(template.format(previous=previous[-300:], message=text[:500]))
        logprobs = llm.label_logprobs(prompt, labels)
        best = max(range(len(labels)), key=logprobs.__getitem__)
        name = ACTS[best]
        slot = slot_of(normalize(text), lex) if name == "item_question" else None
        return Act(name, slot, round(2.718281828 ** logprobs[best], 3))

    classify.wants_previous = True  # type: ignore[attr-defined]
    return classify


def evaluate(rows, lex, classify) -> dict:
    wants_previous = getattr(classify, "wants_previous", False)
    confusion: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    slot_ok = slot_n = 0
    latencies = collections.defaultdict(list)
    for u in rows:
        ctx = turn_context(u, lex)
        start = time.perf_counter()
        act = classify(u.text, ctx, u.previous) if wants_previous else classify(u.text, ctx)
        latencies[u.act].append((time.perf_counter() - start) * 1000)
        confusion[u.act][act.name] += 1
        if u.act == "item_question" and act.name == "item_question":
            slot_n += 1
            slot_ok += act.slot == u.slot
    n = len(rows)
    correct = sum(confusion[a][a] for a in confusion)
    # Diagnostic only: refine and feedback lead to the same system step (update the state,
    # recommend again), and most errors sit on their border.
    merged = correct + confusion["refine"]["feedback"] + confusion["feedback"]["refine"]
    return {
        "n": n,
        "accuracy": round(correct / n, 3) if n else None,
        "accuracy_refine_feedback_merged": round(merged / n, 3) if n else None,
        "recall": {a: round(c[a] / sum(c.values()), 3) for a, c in sorted(confusion.items())},
        "support": {a: sum(c.values()) for a, c in sorted(confusion.items())},
        "slot_accuracy": round(slot_ok / slot_n, 3) if slot_n else None,
        "slot_n": slot_n,
        "confusion": {a: dict(c) for a, c in sorted(confusion.items())},
        "latency_ms_p50": {a: round(statistics.median(v), 3) for a, v in sorted(latencies.items())},
    }


def synthetic(lex, classify) -> dict:
    """The hand-written product-style messages (evaluation/data/dialogue_acts_synthetic.jsonl)."""
    wants_previous = getattr(classify, "wants_previous", False)
    ok = slot_ok = n = 0
    wrong = []
    for u in load_synthetic():
        got = classify(u.text, u.context, "") if wants_previous else classify(u.text, u.context)
        n += 1
        ok += got.name == u.act
        slot_ok += got.name == u.act and got.slot == u.slot
        if got.name != u.act or got.slot != u.slot:
            wrong.append(
                {"text": u.text, "act": u.act, "slot": u.slot, "got": [got.name, got.slot]}
            )
    return {"n": n, "accuracy": round(ok / n, 3), "act_and_slot": round(slot_ok / n, 3),
            "wrong": wrong}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redial", type=Path, required=True, help="valid_data_processed.jsonl")
    ap.add_argument("--labels", type=Path, default=None, help="default: the bundled label file")
    ap.add_argument("--method", default="rules", help="rules | emb | mix | llm")
    ap.add_argument(
        "--splits",
        default="dev,test",
        help="comma-separated: train, dev, test (all rounds), test1 .. test4 (one round)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/dialogue_acts.json"))
    args = ap.parse_args(argv)

    rows = load_labelled(args.redial, args.labels)
    lex, classify = build(args.method)
    report: dict = {"method": args.method, "splits": {}}
    for split in args.splits.split(","):
        part = [u for u in rows if u.split == split.rstrip("1234")]
        if split[-1] in "1234":
            part = [u for u in part if u.round == int(split[-1])]
        result = evaluate(part, lex, classify)
        result["natural"] = evaluate([u for u in part if u.sample == "natural"], lex, classify)[
            "accuracy"
        ]
        report["splits"][split] = result
        print(
            f"{split}: accuracy {result['accuracy']} (n={result['n']}; natural sample "
            f"{result['natural']}; refine=feedback {result['accuracy_refine_feedback_merged']}), "
            f"slot accuracy {result['slot_accuracy']} (n={result['slot_n']})"
        )
        print(f"  latency p50 ms per act: {result['latency_ms_p50']}")
        for act in ACTS:
            if act in result["confusion"]:
                row = ", ".join(f"{k} {v}" for k, v in result["confusion"][act].items())
                print(f"  {act:>13}: {row}")
    report["synthetic"] = synthetic(lex, classify)
    syn = report["synthetic"]
    print(f"synthetic (hand-written, not ReDial): accuracy {syn['accuracy']}, act and slot "
          f"{syn['act_and_slot']} (n={syn['n']})")  # fmt: skip
    for w in syn["wrong"]:
        print(f"  {w['text']!r}: {w['act']}/{w['slot']} -> {w['got'][0]}/{w['got'][1]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
