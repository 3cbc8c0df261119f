"""HTML for the page's recommendation cards and filter chips, and the page's CSS.

Pure functions of plain data (no Gradio import), so they are cheap to test. Every value that
reaches the page goes through `html.escape`. The browser test targets the stable hooks:
`#cards .card[data-item-id]`, `button[data-signal="up"|"down"]`, `#filters .chip[data-filter]`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

PENDING = "…"
EXAMPLES_JS = """
element.addEventListener('click', (event) => {
  const chip = event.target.closest('button[data-example]');
  if (chip) trigger('click', {text: chip.dataset.example});
});
"""
# Inline SVG icons (Lucide, ISC licence): no emoji font or network needed to draw them.
_SVG = (
    '<svg class="icon" viewBox="0 0 24 24" width="{size}" height="{size}" fill="none" '
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" '
    'aria-hidden="true">{paths}</svg>'
)
_PATHS = {
    "up": '<path d="M7 10v12"/><path d="M15 5.88 14 10h5.83a2 2 0 0 1 1.92 2.56l-2.33 8A2 2 0 0 '
    "1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.76a2 2 0 0 0 1.79-1.11L12 2a3.13 3.13 0 "
    '0 1 3 3.88Z"/>',
    "down": '<path d="M17 14V2"/><path d="M9 18.12 10 14H4.17a2 2 0 0 1-1.92-2.56l2.33-8A2 2 0 '
    "0 1 6.5 2H20a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2h-2.76a2 2 0 0 0-1.79 1.11L12 22a3.13 "
    '3.13 0 0 1-3-3.88Z"/>',
    "film": '<path d="M20.2 6 3 11l-.9-2.4c-.3-1.1.3-2.2 1.3-2.5l13.5-4c1.1-.3 2.2.3 2.5 '
    '1.3Z"/><path d="m6.2 5.3 3.1 3.9"/><path d="m12.4 3.4 3.1 4"/><path d="M3 11h18v8a2 '
    '2 0 0 1-2 2H5a2 2 0 0 1-2-2Z"/>',
}
_GENRES = ("genres", "genre", "categories", "category")
_RUNTIME = ("runtime_min", "runtime", "minutes")

# Runs once per component mount. One delegated listener survives every re-render of the
# inner HTML; `trigger` hands the data to the Python listener as `gr.EventData`.
CARDS_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-signal]');
  if (!button || button.disabled) return;
  trigger('click', {item_id: button.dataset.itemId, signal: button.dataset.signal});
});
"""
FILTERS_JS = """
element.addEventListener('click', (event) => {
  const chip = event.target.closest('button[data-filter]');
  if (!chip) return;
  trigger('click', {label: chip.dataset.filter});
});
"""


def icon(name: str, size: int = 16) -> str:
    return _SVG.format(size=size, paths=_PATHS[name])


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _first(facts: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((facts[k] for k in keys if facts.get(k) not in (None, "", [])), None)


def runtime_text(minutes: Any) -> str:
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes <= 0:
        return ""
    h, m = divmod(int(round(minutes)), 60)
    return f"{h}h {m:02d}m" if h else f"{m} min"


def fact_chips(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(css class, text) of the key facts shown on a card: year, runtime, rating, genres."""
    out: list[tuple[str, str]] = []
    year = facts.get("year")
    if isinstance(year, int | float) and not isinstance(year, bool):
        out.append(("year", str(int(year))))
    if runtime := runtime_text(_first(facts, _RUNTIME)):
        out.append(("runtime", runtime))
    if isinstance(rating := facts.get("rating"), str) and rating:
        out.append(("rating", rating))
    genres = _first(facts, _GENRES)
    if isinstance(genres, str):
        genres = [genres]
    out += [("genre", g) for g in (genres or [])[:3]]
    return out


def _card(rank: int, rec: Mapping[str, Any], vote: str | None) -> str:
    item_id = _e(rec["item_id"])
    facts = rec.get("facts") or {}
    chips = "".join(
        f'<span class="fact {cls}">{_e(text)}</span>' for cls, text in fact_chips(facts)
    )
    tags = facts.get("tags")
    tag_line = ""
    if isinstance(tags, list) and tags:
        tag_line = '<p class="tags">' + " ".join(f"#{_e(t)}" for t in tags[:3]) + "</p>"
    reason = rec.get("reason") or ""
    reason_html = (
        f'<p class="reason">{_e(reason)}</p>'
        if reason and reason != PENDING
        else '<p class="reason pending" aria-busy="true">Writing why<span class="dots">…</span></p>'
    )
    state = {"up": " voted-up", "down": " voted-down"}.get(vote or "", "")
    note = '<p class="vote-note">Noted: I won\'t suggest this again.</p>' if vote == "down" else ""

    def button(signal: str, text: str, label: str) -> str:
        pressed = "true" if vote == signal else "false"
        return (
            f'<button type="button" class="vote {signal}" data-signal="{signal}" '
            f'data-item-id="{item_id}" aria-pressed="{pressed}" aria-label="{label}" '
            f'title="{label}">{icon(signal)}<span>{text}</span></button>'
        )

    return (
        f'<article class="card{state}" data-item-id="{item_id}">'
        f'<header><span class="rank">{rank}</span>'
        f'<h3 class="title">{_e(rec["title"])}</h3></header>'
        f'<div class="facts">{chips}</div>{tag_line}{reason_html}{note}'
        f"<footer>{button('up', 'Like', 'More like this')}"
        f"{button('down', 'Not for me', 'Never suggest this again')}</footer>"
        "</article>"
    )


def render_cards(
    recs: Sequence[Mapping[str, Any]],
    votes: Mapping[str, str] | None = None,
    timings_ms: Mapping[str, float] | None = None,
    *,
    turn: int = 0,
    stage: str = "done",
) -> str:
    """The card grid of one turn; `votes` maps item id → 'up' | 'down' for given feedback.

    `data-turn` / `data-stage` ('ranked' while the reply is written, then 'done') let a test
    wait for a particular turn's cards.
    """
    if not recs:
        return (
            f'<div class="empty"><div class="empty-icon">{icon("film", 40)}</div>'
            "<p>Your picks will appear here.</p>"
            '<p class="hint">Describe a mood, a movie you loved, or what to avoid.</p></div>'
        )
    votes = votes or {}
    cards = "".join(_card(i, r, votes.get(str(r["item_id"]))) for i, r in enumerate(recs, 1))
    meta = ""
    if timings_ms and "total" in timings_ms:
        first = timings_ms.get("first_rec", timings_ms["total"])
        meta = (
            f'<p class="timing">first picks in {first / 1000:.1f} s · '
            f"all done in {timings_ms['total'] / 1000:.1f} s</p>"
        )
    return (
        f'<div class="picks" data-turn="{turn}" data-stage="{_e(stage)}">'
        f'<div class="grid">{cards}</div>{meta}</div>'
    )


def render_examples(examples: Sequence[str]) -> str:
    """Example prompts as chips; clicking one sends it."""
    chips = "".join(
        f'<button type="button" class="example" data-example="{_e(x)}">{_e(x)}</button>'
        for x in examples
    )
    return f'<div class="examples"><span class="examples-label">Try</span>{chips}</div>'


def render_filters(labels: Sequence[str]) -> str:
    """Active filters as chips; clicking one removes it."""
    if not labels:
        return (
            '<div class="filters none"><span class="filters-label">No active filters</span></div>'
        )
    chips = "".join(
        f'<button type="button" class="chip" data-filter="{_e(label)}" '
        f'title="Remove this filter">{_e(label)}<span class="x" aria-hidden="true">×</span></button>'
        for label in labels
    )
    return f'<div class="filters"><span class="filters-label">Filters</span>{chips}</div>'


CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto !important; }
#masthead { padding: 6px 2px 0; }
#masthead h1 { display: flex; align-items: center; gap: 10px; margin: 0; font-size: 1.75rem;
  font-weight: 700; letter-spacing: -0.02em; color: var(--body-text-color); }
#masthead .logo { display: grid; place-items: center; width: 44px; height: 44px;
  border-radius: 12px; color: white;
  background: linear-gradient(135deg, var(--primary-500), var(--secondary-500)); }
#masthead p { margin: 6px 0 0; color: var(--body-text-color-subdued); font-size: 1rem; }
#chat-col, #picks-col { gap: 12px; }
#chatbot { border-radius: 16px; }
#composer { gap: 10px; }
#composer #send { min-width: 96px; }

#examples .examples { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; }
#examples .examples-label, #filters .filters-label { font-size: .78rem; font-weight: 600;
  text-transform: uppercase; letter-spacing: .07em; color: var(--body-text-color-subdued);
  margin-right: 2px; }
#examples .example { cursor: pointer; border: 1px solid var(--border-color-primary);
  background: var(--block-background-fill); color: var(--body-text-color);
  border-radius: 999px; padding: 6px 12px; font-size: .9rem; line-height: 1.2;
  transition: border-color .15s, background .15s; }
#examples .example:hover { border-color: var(--primary-400); background: var(--primary-50); }

#picks-head { align-items: center; }
#picks-head h2 { margin: 0; font-size: 1.2rem; font-weight: 700;
  color: var(--body-text-color); }
#start-over { flex-grow: 0; }

#filters .filters { display: flex; flex-wrap: wrap; align-items: center; gap: 6px;
  min-height: 32px; }
#filters .chip { display: inline-flex; align-items: center; gap: 6px; cursor: pointer;
  border: 1px solid var(--primary-300); color: var(--primary-700);
  background: var(--primary-50); border-radius: 999px; padding: 4px 8px 4px 12px;
  font-size: .88rem; line-height: 1.2; transition: background .15s, transform .1s; }
#filters .chip:hover { background: var(--primary-100); }
#filters .chip:active { transform: scale(.97); }
#filters .chip .x { display: grid; place-items: center; width: 18px; height: 18px;
  border-radius: 999px; background: var(--primary-200); font-size: .9rem; line-height: 1; }

#cards .grid { display: grid; gap: 14px;
  grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); }
#cards .card { display: flex; flex-direction: column; gap: 8px; padding: 14px 14px 10px;
  border: 1px solid var(--border-color-primary); border-radius: 16px;
  background: var(--block-background-fill); box-shadow: 0 1px 3px rgba(15,23,42,.06);
  transition: box-shadow .15s, transform .15s, opacity .2s; }
#cards .card:hover { box-shadow: 0 8px 24px rgba(15,23,42,.10); transform: translateY(-1px); }
#cards .card header { display: flex; align-items: flex-start; gap: 10px; }
#cards .rank { flex: none; width: 26px; height: 26px; border-radius: 8px; display: grid;
  place-items: center; font-weight: 700; font-size: .85rem; color: var(--primary-700);
  background: var(--primary-100); }
#cards .title { margin: 1px 0 0; font-size: 1.08rem; font-weight: 700; line-height: 1.3;
  color: var(--body-text-color); }
#cards .facts { display: flex; flex-wrap: wrap; gap: 5px; }
#cards .fact { font-size: .78rem; padding: 2px 8px; border-radius: 999px;
  background: var(--background-fill-secondary); color: var(--body-text-color-subdued);
  border: 1px solid var(--border-color-primary); }
#cards .fact.rating { font-weight: 700; color: var(--body-text-color); }
#cards .fact.genre { text-transform: capitalize; color: var(--secondary-700);
  background: var(--secondary-50); border-color: var(--secondary-200); }
#cards .tags { margin: 0; font-size: .8rem; color: var(--body-text-color-subdued); }
#cards .reason { margin: 0; font-size: .93rem; line-height: 1.45; color: var(--body-text-color);
  flex: 1; }
#cards .reason.pending { color: var(--body-text-color-subdued); font-style: italic; }
#cards .reason.pending .dots { display: inline-block; animation: rc-pulse 1.2s infinite; }
@keyframes rc-pulse { 0%, 100% { opacity: .25; } 50% { opacity: 1; } }
#cards .card footer { display: flex; gap: 8px; justify-content: flex-end;
  border-top: 1px solid var(--border-color-primary); padding-top: 9px; }
#cards .vote { display: inline-flex; align-items: center; gap: 6px; cursor: pointer;
  font-size: .82rem; font-weight: 600; line-height: 1; padding: 6px 10px; border-radius: 10px;
  border: 1px solid var(--border-color-primary); color: var(--body-text-color-subdued);
  background: var(--background-fill-primary); transition: all .15s; }
#cards .vote.up:hover { color: #15803d; border-color: #86efac; background: #f0fdf4; }
#cards .vote.down:hover { color: #b91c1c; border-color: #fca5a5; background: #fef2f2; }
#cards .vote[aria-pressed="true"].up { color: #15803d; background: #dcfce7; border-color: #22c55e; }
#cards .vote[aria-pressed="true"].down { color: #b91c1c; background: #fee2e2;
  border-color: #ef4444; }
#cards .card.voted-up { border-color: #22c55e; box-shadow: 0 0 0 3px rgba(34,197,94,.15); }
#cards .card.voted-down { opacity: .6; }
#cards .card.voted-down .title { text-decoration: line-through; }
#cards .vote-note { margin: 0; font-size: .8rem; color: #b91c1c; }
#cards .timing { margin: 10px 2px 0; font-size: .78rem; color: var(--body-text-color-subdued);
  text-align: right; }
#cards .empty { border: 2px dashed var(--border-color-primary); border-radius: 16px;
  padding: 56px 16px; text-align: center; color: var(--body-text-color-subdued); }
#cards .empty-icon { color: var(--primary-400); }
#cards .empty p { margin: 6px 0 0; font-size: 1.02rem; }
#cards .empty .hint { font-size: .88rem; }
"""
