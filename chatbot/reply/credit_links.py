"""The strongest true link between a recommended item and the items the user talked about.

    link = find_link(item, seeds, collab)  # Link("director", "Heat (1995)", "Michael Mann")

Template reasons name it ("directed by Michael Mann, as was Heat"), so a user sees why an item
was picked in terms they can check. Links are facts, never guesses: a shared director or
leading star read from both catalog records, a pair recommended together in the logged
dialogues the collaborative signals were learnt from, or, weakest, genres both records list.
Seeds come liked first, then the other mentioned items, most recent first; the first seed with
a link of the best kind wins (for genres: the seed sharing the most).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.candidates import CREDIT_POINTS, leading_people
from retrieval.collab import CollabSignals
from retrieval.types import Item

# People links, strongest first: the credits signal's fields (director, star, actor).
PEOPLE_FIELDS = tuple(sorted(CREDIT_POINTS, key=lambda f: -CREDIT_POINTS[f]))


@dataclass(frozen=True)
class Link:
    kind: str  # a PEOPLE_FIELDS name, "cooc" or "genres" (reason_links.toml: one phrase each)
    seed_title: str
    name: str = ""  # the shared person (people links) or "the crime genre" (genre links)


def find_link(item: Item, seeds: Sequence[Item], collab: CollabSignals | None) -> Link | None:
    """The best link from `item` to one of `seeds` (best first), or None."""
    for kind in PEOPLE_FIELDS:
        people = {p.lower(): p for p in leading_people(item, kind)}
        for seed in seeds:
            shared = [p.lower() for p in leading_people(seed, kind) if p.lower() in people]
            if shared and seed.item_id != item.item_id:
                return Link(kind, seed.title, people[shared[0]])
    if collab is not None:
        for seed in seeds:
            if collab.cooc.get(seed.item_id, {}).get(item.item_id, 0) > 0:
                return Link("cooc", seed.title)
    return _genre_link(item, seeds)


def _genre_link(item: Item, seeds: Sequence[Item]) -> Link | None:
    """The weakest link: genres both records list, with the seed sharing the most (ties: the
    earlier seed). Named in the item's own genre order: 'the crime and thriller genres'."""
    best: tuple[int, Item, list[str]] | None = None
    for seed in seeds:
        theirs = {g.lower() for g in seed.genres}
        shared = [g for g in item.genres if g.lower() in theirs]
        if shared and seed.item_id != item.item_id and (best is None or len(shared) > best[0]):
            best = (len(shared), seed, shared)
    if best is None:
        return None
    _, seed, shared = best
    names = shared[0] if len(shared) == 1 else ", ".join(shared[:-1]) + " and " + shared[-1]
    return Link("genres", seed.title, f"the {names} genre{'s' if len(shared) > 1 else ''}")


def seed_order(
    liked: Sequence[str], mentioned: Sequence[str], rejected: Sequence[str]
) -> list[str]:
    """Seed ids for links: liked first, then other mentioned ones, each most recent first."""
    skip = set(rejected)
    ordered = [*reversed(liked), *reversed(mentioned)]
    return [i for i in dict.fromkeys(ordered) if i not in skip]
