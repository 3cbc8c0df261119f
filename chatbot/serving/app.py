"""Gradio page and HTTP API of recochat.

    recochat chat --port 7860 --auth alice:secret

API (call it with `gradio_client.Client`):
    /recommend(message, session_id) -> {"reply", "recommendations": [{item_id, title, reason,
                                        score}], "timings_ms", "filters", "act"[, "answer"]}
    /chat(message, history)         -> the page's own streaming turn: cards, then the reply
                                       token by token (session: one per tab)
    /feedback(session_id, item_id, signal 'up'|'down') -> {"ok": true, "id": feedback row id}
    /reset(session_id)              -> {"ok": true}

Components are created once per process by `serve` and shared by every session; what the
page and API do lives in `chatbot.serving.chat_service.ChatService` (sessions, turns one at a
time under the session's lock, feedback); this module is the layout and the endpoints.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from chatbot.config import Settings
from chatbot.errors import USER_ERRORS, ConfigError, RecochatError
from chatbot.reply.turn_result import Recommendation, TurnResult
from chatbot.serving.chat_service import ChatService
from chatbot.serving.sessions import SessionStore
from chatbot.serving.ui_cards import (
    CARDS_JS,
    CSS,
    EXAMPLES_JS,
    FILTERS_JS,
    PENDING,
    icon,
    render_cards,
    render_examples,
    render_filters,
)
from chatbot.turn import Recommender
from chatbot.understanding.acts import NO_PICKS

log = logging.getLogger(__name__)

EXAMPLES = [
    "Something like Heat but less violent, after 2000",
    "A funny animated movie for kids",
    "A mind-bending sci-fi film, no horror",
    "A cozy mystery under 2 hours",
]
INTERNAL_ERROR = "Something went wrong on our side (it was logged). Try again, or start over."


# -- rendering helpers ---------------------------------------------------------------------
def _card_data(recs: list[Recommendation]) -> list[dict[str, Any]]:
    return [{**r.to_dict(), "reason": r.reason or PENDING, "facts": r.facts} for r in recs]


def _md(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in text)


def _chat_reply(update: TurnResult) -> str:
    """The bot's chat message: the reply (growing while it streams), then the picks."""
    lines = [_md(update.reply)] if update.reply else []
    for i, r in enumerate(update.recommendations, 1):
        year = r.facts.get("year")
        dated = year and f"({year})" not in r.title  # ReDial titles carry their year
        lines.append(f"{i}. **{_md(r.title)}**" + (f" ({year})" if dated else ""))
    return "\n".join(lines) or "…"


def _user_error(exc: Exception) -> str:
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    log.exception("unexpected error in a chat turn")
    return INTERNAL_ERROR


def _api_error(exc: Exception) -> gr.Error:
    return gr.Error(_user_error(exc), print_exception=False)


def new_session_id() -> str:
    return uuid.uuid4().hex


# -- the app -------------------------------------------------------------------------------
def build_app(
    settings: Settings,
    recommender: Recommender | None = None,
    feedback_store: Any = None,
    *,
    sessions: SessionStore | None = None,
) -> gr.Blocks:
    """The page and its API; heavy components are built here only when not passed in.

    `sessions` lets a caller (tests, an embedding app) hold the session states it serves.
    """
    if recommender is None:
        from chatbot.turn import build_recommender

        recommender = build_recommender(settings)
    if feedback_store is None:
        from chatbot.serving.feedback import FeedbackStore

        feedback_store = FeedbackStore(settings.feedback_db)
    service = ChatService(settings, recommender, feedback_store, sessions)

    # API endpoints (typed, so gradio_client sees plain str/dict) --------------------------
    def recommend(message: str, session_id: str) -> dict:
        """One recommendation turn for `session_id`; returns reply, recommendations, timings."""
        try:
            return service.recommend(session_id, message).to_dict()
        except Exception as exc:
            raise _api_error(exc) from None

    def feedback(session_id: str, item_id: str, signal: str) -> dict:
        """Record 👍 ('up') or 👎 ('down') on a shown item; 👎 items are never shown again."""
        try:
            return {"ok": True, "id": service.feedback(session_id, item_id, signal)}
        except Exception as exc:
            raise _api_error(exc) from None

    def reset(session_id: str) -> dict:
        """Forget the session's conversation, feedback and filters."""
        try:
            service.reset(session_id)
        except Exception as exc:
            raise _api_error(exc) from None
        return {"ok": True}

    # Page handlers ---------------------------------------------------------------------------
    def chat(message: str, history: list, session_id: str):
        session_id = session_id or new_session_id()
        history = list(history or [])
        text = (message or "").strip()
        if text:
            history.append({"role": "user", "content": text})
        history.append({"role": "assistant", "content": "*Looking through the catalog…*"})
        yield "", history, gr.skip(), gr.skip(), session_id
        try:
            turn = service.view(session_id)["turn"] + 1
            for update in service.stream(session_id, message):
                history[-1] = {"role": "assistant", "content": _chat_reply(update)}
                if update.stage == "reply" or (
                    not update.recommendations and update.act in NO_PICKS
                ):
                    # The reply growing (the cards are already up), or an answer / a greeting
                    # (the previous cards and filter chips stay): only the chat changes.
                    yield "", history, gr.skip(), gr.skip(), session_id
                    continue
                view = {
                    "recs": _card_data(update.recommendations),
                    "timings_ms": update.timings_ms if update.stage == "done" else None,
                    "turn": turn,
                    "stage": update.stage,
                }
                service.show(session_id, view)
                # Fresh picks carry no votes: voted items are excluded from candidates.
                yield "", history, render_cards(**view), render_filters(update.filters), session_id
        except Exception as exc:
            history[-1] = {"role": "assistant", "content": f"⚠️ {_user_error(exc)}"}
            yield "", history, gr.skip(), gr.skip(), session_id

    def on_vote(session_id: str, evt: gr.EventData):
        data = evt._data or {}
        try:
            service.feedback(session_id, str(data.get("item_id", "")), str(data.get("signal", "")))
        except Exception as exc:
            gr.Warning(_user_error(exc))
            return gr.skip()
        return render_cards(**service.view(session_id), votes=service.votes(session_id))

    def on_filter(session_id: str, evt: gr.EventData):
        try:
            labels = service.remove_filter(session_id, str((evt._data or {}).get("label", "")))
        except Exception as exc:
            gr.Warning(_user_error(exc))
            return gr.skip()
        return render_filters(labels)

    def pick_example(evt: gr.EventData) -> str:
        return str((evt._data or {}).get("text", ""))

    def start_over(session_id: str):
        if session_id:
            service.reset(session_id)
        return "", [], render_cards([]), render_filters([])

    with gr.Blocks(title="recochat", analytics_enabled=False) as demo:
        session = gr.State("")  # a fresh id per page load (demo.load below): one per tab
        gr.HTML(
            f'<h1><span class="logo">{icon("film", 28)}</span>recochat</h1>'
            "<p>Tell me what you are in the mood for: I pick from the catalog, say why, "
            "and learn from your thumbs up and down.</p>",
            elem_id="masthead",
            apply_default_css=False,
            js_on_load=None,
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=360, elem_id="chat-col"):
                chatbot = gr.Chatbot(
                    elem_id="chatbot",
                    height=480,
                    show_label=False,
                    feedback_options=None,
                    buttons=[],
                    placeholder="**Ask for a movie**: a mood, a favourite, a year, what to avoid.",
                )
                with gr.Row(elem_id="composer", equal_height=True):
                    msg = gr.Textbox(
                        elem_id="message",
                        show_label=False,
                        scale=5,
                        placeholder="e.g. something like Heat but less violent",
                        max_lines=4,
                        autofocus=True,
                    )
                    send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
                examples = gr.HTML(
                    render_examples(EXAMPLES),
                    elem_id="examples",
                    js_on_load=EXAMPLES_JS,
                    apply_default_css=False,
                )
            with gr.Column(scale=7, min_width=420, elem_id="picks-col"):
                with gr.Row(elem_id="picks-head", equal_height=True):
                    gr.HTML("<h2>Picks for you</h2>", apply_default_css=False, js_on_load=None)
                    clear = gr.Button(
                        "↺ Start over", elem_id="start-over", size="sm", scale=0, min_width=120
                    )
                filters = gr.HTML(
                    render_filters([]),
                    elem_id="filters",
                    js_on_load=FILTERS_JS,
                    apply_default_css=False,
                )
                cards = gr.HTML(
                    render_cards([]), elem_id="cards", js_on_load=CARDS_JS, apply_default_css=False
                )

        turn_io = dict(
            inputs=[msg, chatbot, session],
            outputs=[msg, chatbot, cards, filters, session],
            concurrency_id="turn",
            show_progress="hidden",
        )
        gr.on([msg.submit, send.click], chat, api_name="chat", **turn_io)
        examples.click(
            pick_example,
            None,
            msg,
            api_visibility="private",
            queue=False,
        ).then(chat, api_visibility="private", **turn_io)
        light = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden")
        cards.click(on_vote, [session], cards, **light)
        filters.click(on_filter, [session], filters, **light)
        reset_io = ([session], [msg, chatbot, cards, filters])
        clear.click(start_over, *reset_io, **light)
        chatbot.clear(start_over, *reset_io, **light)
        demo.load(new_session_id, None, session, api_visibility="private", queue=False)
        gr.api(recommend, api_name="recommend", concurrency_id="turn")
        gr.api(feedback, api_name="feedback", concurrency_limit=None)
        gr.api(reset, api_name="reset", concurrency_limit=None)

    demo.queue(default_concurrency_limit=settings.turns_at_once, max_size=settings.server.max_queue)
    return demo


def parse_auth(value: str) -> list[tuple[str, str]] | None:
    """'user:pass', or a file of user:pass lines ('#' comments), into Gradio's auth list."""
    if not value:
        return None
    path = Path(value).expanduser()
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    pairs = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not (sep and user and password):
            raise ConfigError("server.auth must be 'user:pass' or a file of user:pass lines")
        pairs.append((user, password))
    if not pairs:
        raise ConfigError(f"auth file {path} has no user:pass lines")
    return pairs


def theme() -> gr.themes.Base:
    font = (
        gr.themes.LocalFont("Source Sans Pro", weights=(400, 600, 700)),
        "ui-sans-serif",
        "system-ui",
        "sans-serif",
    )
    return gr.themes.Soft(
        primary_hue="indigo", secondary_hue="rose", neutral_hue="slate", radius_size="lg", font=font
    )


def launch(demo: gr.Blocks, settings: Settings, **kwargs: Any):
    """Start the server for `demo` with the host, port and auth of `settings.server`."""
    server = settings.server
    auth = parse_auth(server.auth)
    if auth is None and server.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s without auth: anyone on the network can use it (set --auth user:pass)",
            server.host,
        )
    options: dict[str, Any] = dict(
        server_name=server.host,
        server_port=server.port,
        auth=auth,
        show_error=False,
        auth_message="recochat: sign in to continue" if auth else None,
        theme=theme(),
        css=CSS,
        footer_links=["api"],
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
    )
    options.update(kwargs)
    return demo.launch(**options)


def serve(settings: Settings) -> None:
    """Load the model, embedder and store once, then serve the page and API (blocks)."""
    from chatbot.turn import build_recommender

    recommender = build_recommender(settings)
    try:
        recommender.catalog()
    except RecochatError as exc:
        log.warning("%s", exc)
    launch(build_app(settings, recommender), settings)
