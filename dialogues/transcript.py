"""A dialogue as the models read it: `User: ...` / `Assistant: ...` lines, newest kept.

Every prompt that shows a conversation (the rerankers, reasons, the naive baselines, the
latency bench) renders it here, so they all see the same text.
"""

from __future__ import annotations

from collections.abc import Sequence


def format_conversation(utterances: Sequence[tuple[str, str]], max_chars: int = 700) -> str:
    """Render (role, text) pairs oldest first, keeping the most recent `max_chars`."""
    lines = [
        f"{'User' if role == 'user' else 'Assistant'}: {text.strip()}"
        for role, text in utterances
        if text.strip()
    ]
    out: list[str] = []
    used = 0
    for line in reversed(lines):
        if used + len(line) > max_chars and out:
            break
        out.append(line[-max_chars:])
        used += len(line) + 1
    return "\n".join(reversed(out))
