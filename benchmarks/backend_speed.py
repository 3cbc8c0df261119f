"""Per-task speed of one LLM backend on the default model, one backend per process (peak RSS).

    python benchmarks/backend_speed.py --backend transformers --out runs/speed-transformers.json
    python benchmarks/backend_speed.py --backend llamacpp --out runs/speed-llamacpp.json
    python -m llama_cpp.server --model "$(python -c 'from inference.model_files import \
        builtin_gguf_path as p; print(p())')" --host 127.0.0.1 --port 8765 --n_ctx 4096 &
    python benchmarks/backend_speed.py --backend openai --base-url http://127.0.0.1:8765/v1 \
        --server-pid $! --out runs/speed-openai.json

Tasks, each timed `--reps` times (medians; the 1-minute load average is recorded with each,
the machine is shared):
- `listwise_cold`: the 20-candidate rerank prompt (`prompts/rerank.txt`) run from its first
  token + the 20 letter log-probabilities;
- `listwise_warm`: the same with the prompt's static head cached (as served; a new
  conversation each rep);
- `pointwise_20`: 20 yes/no prompts (`prompts/score.txt`) with the head cached;
- `decode_40`: greedy decoding of up to 40 tokens (tokens/s);
- `reason_constrained`: one reason with its allowed vocabulary, 24 tokens (as served).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

from chatbot.ranking.rerank import LABELS, SCORE_LABELS, rerank_user_text, score_user_text
from evaluation.backend_parity import fixed_turns
from inference.settings import LLMSettings
from prompts.loader import render
from retrieval.candidates import RRF_K

CONVERSATIONS = [f"User: a film for night {i}, something tense like Heat" for i in range(64)]


def load_backend(args: argparse.Namespace):
    cache = Path(args.model_cache)
    if args.backend == "transformers":
        from inference.llm import load_llm

        return load_llm(LLMSettings(), cache)
    if args.backend == "llamacpp":
        from inference.backends.llamacpp import LlamaCppLLM
        from inference.model_files import builtin_gguf_path

        gguf = Path(args.gguf) if args.gguf else builtin_gguf_path()
        return LlamaCppLLM(gguf, threads=args.threads)
    from transformers import AutoTokenizer

    from inference.backends.openai_http import OpenAIHTTPLLM
    from inference.model_files import resolve_model_dir
    from inference.settings import BUILTIN_LLM

    tok = AutoTokenizer.from_pretrained(resolve_model_dir(BUILTIN_LLM, cache))
    return OpenAIHTTPLLM(args.base_url, args.served_model or _served(args.base_url), tok)


def _served(base_url: str) -> str:
    import openai

    return openai.OpenAI(base_url=base_url, api_key="unused").models.list().data[0].id


def timed(fn, reps: int) -> dict[str, float]:
    times, loads = [], []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "reps": reps,
        "load_1min": round(statistics.median(loads), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["transformers", "llamacpp", "openai"], required=True)
    ap.add_argument("--gguf", default="", help="GGUF file for llamacpp (default: builtin).")
    ap.add_argument("--base-url", default="http://127.0.0.1:8765/v1")
    ap.add_argument("--served-model", default="", help="Model name on the server (default: first).")
    ap.add_argument("--server-pid", type=int, default=0, help="Server pid, for its peak RSS.")
    ap.add_argument("--model-cache", default=".recochat/models")
    ap.add_argument("--threads", type=int, default=1, help="llamacpp threads (0: its default)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    t0 = time.perf_counter()
    llm = load_backend(args)
    load_s = time.perf_counter() - t0
    system = render("system")
    items = fixed_turns()[0].items
    letters = list(LABELS[: len(items)])
    mark = "\x00head\x00"

    def listwise(conversation: str) -> list[float]:
        prompt = llm.chat_prompt(rerank_user_text(conversation, items), system=system)
        return llm.label_logprobs(prompt, letters)

    def score_prompts(conversation: str) -> list[str]:
        return [
            llm.chat_prompt(
                score_user_text(conversation, it, {"dense": 1.0 / (RRF_K + r + 1)}), system=system
            )
            for r, it in enumerate(items)
        ]

    results: dict[str, object] = {"backend": args.backend, "name": llm.name, "load_s": load_s}
    if args.backend == "llamacpp":
        results["threads"] = args.threads
    probe = llm.chat_prompt(rerank_user_text(CONVERSATIONS[0], items), system=system)
    results["listwise_prompt_chars"] = len(probe)
    results["listwise_cold"] = timed(lambda i: listwise(CONVERSATIONS[i]), args.reps)
    llm.cache_head(llm.chat_prompt(rerank_user_text(mark, items), system=system), mark)
    llm.cache_head(score_prompts(mark)[0], mark)
    results["listwise_warm"] = timed(lambda i: listwise(CONVERSATIONS[10 + i]), args.reps)
    results["pointwise_20"] = timed(
        lambda i: llm.label_logprobs_rows(score_prompts(CONVERSATIONS[20 + i]), list(SCORE_LABELS)),
        args.reps,
    )
    story = llm.chat_prompt("Write a long story about a detective in a rainy city.")
    tokens0, decode0 = llm.stats.generated_tokens, llm.stats.decode_s
    results["decode_40"] = timed(lambda i: llm.generate([story], 40, stop=None), args.reps)
    tokens = llm.stats.generated_tokens - tokens0
    decode_s = llm.stats.decode_s - decode0
    results["decode_40"]["tokens_per_s"] = round(tokens / decode_s, 1) if decode_s else None
    results["decode_40"]["tokens"] = tokens
    item = items[0]
    facts = [item.facts_text()]
    reason = llm.chat_prompt(
        render("reason", user_words="tense crime at night", facts=item.facts_text()), system=system
    )
    allowed = [llm.vocabulary_of(facts + ["tense crime at night"])]
    results["reason_constrained"] = timed(
        lambda i: llm.generate([reason], 24, allowed_tokens=allowed, one_sentence=True), args.reps
    )
    results["reason_text"] = llm.generate([reason], 24, allowed_tokens=allowed, one_sentence=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.server_pid:
        status = Path(f"/proc/{args.server_pid}/status").read_text().splitlines()
        hwm = next(line for line in status if line.startswith("VmHWM"))
        results["server_peak_rss_mb"] = round(int(hwm.split()[1]) / 1024, 1)
    for key in ("requests", "logprob_mode", "grammar_ok", "constraint_fallbacks"):
        if hasattr(llm, key):
            results[key] = getattr(llm, key)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
