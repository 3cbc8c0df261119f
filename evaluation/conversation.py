"""Conversation metrics of the system that writes replies (report.json `"conversation"`).

For each scored turn the served `ReplyWriter` writes the reply over the system's own picks
(the top `k_final` of its novel ranking) and the checks run, as in a live turn. Reported:

- `reply_survival_rate`: model replies served as written (passed `reply_checks`);
- `fallback_rate`: replies replaced by the template (1 - survival);
- `grounded_title_rate`: catalog titles named in the model's replies that the turn allows
  (its picks, the user's titles), over all titles they name (null when none is named);
- `ungrounded_titles`: titles in the *served* replies that the turn does not allow (must be 0);
- `distinct2`: distinct word bigrams over all bigrams of the model's replies;
- `bleu2`: sacrebleu BLEU with bigrams of the model's replies against the logged responses;
- `perplexity`: of the logged responses (`resp`) under the served reply prompt with the
  turn's logged picks (what the response talks about), when the dataset has responses.

This module knows reply inputs and text metrics; the writer and the rankings come in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from chatbot.reply.reply_checks import named_titles
from chatbot.reply.reply_prompt import logged_reply_input, reply_prompt
from evaluation.protocol import EvalTurn
from inference import compute_thread
from retrieval.types import Item

PPL_BATCH = 8


def distinct_2(texts: Sequence[str]) -> float:
    """Distinct word bigrams over all word bigrams of `texts` (0.0 without any bigram)."""
    grams = [
        tuple(ws[i : i + 2])
        for t in texts
        for ws in [t.lower().split()]
        for i in range(len(ws) - 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def bleu_2(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU over 1- and 2-grams (sacrebleu), 0-100."""
    from sacrebleu.metrics import BLEU

    return BLEU(max_ngram_order=2).corpus_score(list(hypotheses), [list(references)]).score


def perplexity(llm: Any, pairs: Sequence[tuple[str, str]], batch: int = PPL_BATCH) -> float:
    """exp(mean NLL) of each completion's tokens after its prompt (end-of-turn excluded)."""
    import torch

    tok = llm.tokenizer
    nll, count = 0.0, 0
    for start in range(0, len(pairs), batch):
        rows, spans = [], []
        for prompt, completion in pairs[start : start + batch]:
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            c = tok(completion, add_special_tokens=False)["input_ids"]
            rows.append(p + c)
            spans.append((len(p), len(p) + len(c)))
        width = max(map(len, rows))
        pad = tok.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=llm.device)
        mask = torch.tensor(
            [[1] * len(r) + [0] * (width - len(r)) for r in rows], device=llm.device
        )
        with llm.lock, torch.inference_mode():
            logp = compute_thread.run(_token_logprobs, llm.model, ids, mask)
        for b, (lo, hi) in enumerate(spans):
            targets = ids[b, lo:hi]
            picked = logp[b, lo - 1 : hi - 1].gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            nll -= picked.sum().item()
            count += hi - lo
    return math.exp(nll / max(count, 1))


def _token_logprobs(model: Any, ids: Any, mask: Any) -> Any:
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    return torch.log_softmax(logits, dim=-1)


def conversation_metrics(
    writer: Any,
    turns: Sequence[EvalTurn],
    rankings: Sequence[Sequence[str]],
    records: Mapping[str, Item],
    *,
    k_picks: int,
) -> dict[str, Any]:
    """The `"conversation"` entry of one system: `rankings[i]` is its novel ranking of
    `turns[i]`; `writer` is the served `ReplyWriter` (its `index` is the title matcher)."""
    index = writer.index
    inputs = []
    for t, ranked in zip(turns, rankings, strict=True):
        picks = [records[i] for i in t.ranking_for("novel", ranked, k_picks) if i in records]
        inputs.append(logged_reply_input(t.turn.context, picks, index))
    replies = writer.write_many(inputs)
    named, grounded, ungrounded = title_counts(inputs, replies, index)
    n = len(replies)
    survived = sum(not r.fallback for r in replies)
    texts = [r.model_text for r in replies]
    with_resp = [(t, r) for t, r in zip(turns, replies, strict=True) if t.turn.response.strip()]
    out: dict[str, Any] = {
        "n_replies": n,
        "reply_survival_rate": survived / n if n else None,
        "fallback_rate": (n - survived) / n if n else None,
        "grounded_title_rate": grounded / named if named else None,
        "titles_named": named,
        "ungrounded_titles": ungrounded,
        "distinct2": distinct_2(texts) if n else None,
        "bleu2": (
            bleu_2([r.model_text for _, r in with_resp], [t.turn.response for t, _ in with_resp])
            if with_resp
            else None
        ),
        "perplexity": None,
        "n_perplexity": 0,
    }
    pairs = []
    for t in turns:
        picks = [records[g] for g in t.gold if g in records]
        if t.turn.response.strip() and picks:
            inp = logged_reply_input(t.turn.context, picks, index)
            pairs.append((reply_prompt(writer.llm, inp, writer.directory), t.turn.response))
    if pairs:
        out["perplexity"] = perplexity(writer.llm, pairs)
        out["n_perplexity"] = len(pairs)
    return out


def title_counts(inputs, replies, index) -> tuple[int, int, int]:
    """(titles the model named, of them allowed, titles outside the allowed ones in what was
    served) over paired `ReplyInput`s and `Reply`s; a shared name said without a year is read
    as the title in play, as the reply checks read it."""
    named = grounded = ungrounded = 0
    for inp, reply in zip(inputs, replies, strict=True):
        allowed = {title.lower() for title in inp.allowed_titles}
        titles = named_titles(reply.model_text, index, inp.allowed_titles)
        named += len(titles)
        grounded += sum(title.lower() in allowed for title in titles)
        served = named_titles(reply.text, index, inp.allowed_titles)
        ungrounded += sum(title.lower() not in allowed for title in served)
    return named, grounded, ungrounded
