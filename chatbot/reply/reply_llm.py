"""The LLM the reply writer runs on: the served one, or a second copy tuned for replies.

    reply_llm = load_reply_llm(settings.llm, settings.model_cache)   # None: no reply adapter
    writer = build_reply_writer(settings, llm, index, reply_llm=reply_llm)

`llm.reply_adapter` (an adapter dir made by `recochat finetune --task reply`) loads the base
model a second time with that adapter merged (for the 135M default, ~0.5 GB more memory), so
the ranking adapter (`llm.adapter`) and the reply adapter are served side by side without
switching weights under the lock. Unset, the reply is written by the served LLM.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from chatbot.reply.writer import ReplyWriter
from inference.llm import LLM, load_llm
from inference.settings import LLMSettings

log = logging.getLogger(__name__)


def load_reply_llm(settings: LLMSettings, cache_dir: Path) -> LLM | None:
    """The base model with `settings.reply_adapter` merged, or None when none is configured."""
    if settings.reply_adapter is None:
        return None
    log.info("loading the reply LLM with adapter %s", settings.reply_adapter)
    return load_llm(
        settings.model_copy(update={"adapter": settings.reply_adapter, "reply_adapter": None}),
        cache_dir,
    )


def build_reply_writer(
    settings: Any, llm: LLM, index: Any, *, reply_llm: LLM | None = None
) -> ReplyWriter:
    """The turn's `ReplyWriter`: on `reply_llm` if given, else on the configured reply adapter
    (loaded here), else on the served `llm`. `settings`: the chatbot's `Settings`."""
    if reply_llm is None:
        reply_llm = load_reply_llm(settings.llm, settings.model_cache)
    return ReplyWriter(reply_llm or llm, index, directory=settings.prompts.dir)
