"""People and genres linked in free text; the entity co-occurrence signal, end to end."""

from __future__ import annotations

import json

import pytest

from chatbot.understanding.constraints import CatalogSchema
from chatbot.understanding.mentions import MentionFinder
from chatbot.understanding.state import DialogueState
from retrieval.candidates import FusionWeights, generate_candidates
from retrieval.catalog import load_catalog
from retrieval.collab import CollabSignals
from retrieval.entity_cooc import learn_entity_cooc
from retrieval.entity_links import EntityLinker, genre_name
from retrieval.store import ItemStore
from retrieval.types import Item, Query


def _item(item_id, title, genres=(), director=(), actor=(), writer=()):
    meta = {"genres": list(genres), "director": list(director), "actor": list(actor)}
    if writer:
        meta["writer"] = list(writer)
    people = ", ".join([*director, *actor])
    return Item(item_id, title, f"{title}\ngenres: {', '.join(genres)}\npeople: {people}", meta)


ITEMS = [
    _item("m1", "Big", ["comedy", "family"], ["Penny Marshall"], ["Tom Hanks"]),
    _item("m2", "Cast Away", ["drama", "adventure film"], ["Robert Zemeckis"], ["Tom Hanks"]),
    _item("m3", "Se7en", ["thriller", "crime fiction"], ["David Fincher"], ["Brad Pitt"]),
    _item("m4", "Zodiac", ["thriller", "mystery"], ["David Fincher"], ["Jake Gyllenhaal"]),
    _item("m5", "Fight Club", ["drama", "thriller"], ["David Fincher"], ["Brad Pitt"]),
    _item("m6", "Tom Hanks Jr. Story", ["romance film"], ["Tom Hanks Jr."], ["Will Grant"]),
    _item("m7", "Coco", ["animation", "family (film genre) #395"], ["Lee Unkrich"], ["Anthony"]),
    _item("m8", "Gone Girl", ["thriller"], ["David Fincher"], ["Rosamund Pike"], ["Gillian Flynn"]),
    _item("m9", "Boardwalk", ["crime"], [], ["Michael Pitt"]),
]


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return EntityLinker(ITEMS)


def keys(linker: EntityLinker, text: str) -> list[str]:
    return [link.key for link in linker.find(text)]


def test_links_people_case_insensitively_on_word_boundaries(linker):
    assert keys(linker, "Do you like tom hanks?") == ["person:tom hanks"]
    assert keys(linker, "I loved Brad Pitt's acting") == ["person:brad pitt"]
    assert keys(linker, "the writer Gillian Flynn") == ["person:gillian flynn"]
    assert keys(linker, "atom hanksome") == []  # inside other words: no hit


def test_longest_match_wins(linker):
    assert keys(linker, "what did Tom Hanks Jr. direct?") == ["person:tom hanks jr"]


def test_surname_alone_when_capitalised_and_unique(linker):
    assert keys(linker, "anything else by Fincher?") == ["person:david fincher"]
    assert keys(linker, "a fincher of finches") == []  # lowercase: not a name
    assert keys(linker, "Pitt was great") == []  # two catalog people are called Pitt


def test_no_false_hits_on_common_words(linker):
    assert keys(linker, "I will grant you that, Anthony") == ["person:anthony"]
    assert keys(linker, "Will you grant me one? I'll tell my family about the war") == []
    assert keys(linker, "what a Grant") == []  # a surname that is a common word


def test_genres_normalised_plural_and_guarded(linker):
    assert genre_name("Family (Film genre) #395") == "family"
    assert genre_name("Adventure Film") == "adventure"
    assert keys(linker, "I like thrillers and a romance film") == [
        "genre:thriller",
        "genre:romance",
    ]
    assert keys(linker, "any good family movies?") == ["genre:family"]
    assert keys(linker, "my family loves it") == []  # an everyday word without a media noun
    assert keys(linker, "some crime fiction") == ["genre:crime fiction"]


def test_state_keeps_liked_people_and_drops_rejected(linker):
    finder = MentionFinder.of(ITEMS)
    state = DialogueState()
    state.add_user("I love Tom Hanks but I don't like thrillers", finder, CatalogSchema())
    state.add_assistant("Brad Pitt is in Se7en.", finder)
    assert state.liked_entities == ["person:tom hanks"]
    assert state.rejected_entities == ["genre:thriller"]
    assert state.entities == ["person:tom hanks", "genre:thriller", "person:brad pitt"]
    query = state.to_query(CatalogSchema(), window=2)
    assert query.entity_keys == ("person:tom hanks", "person:brad pitt")
    assert "Brad Pitt is in Se7en." in query.text  # the recommender's words in the window
    assert "Brad Pitt" not in state.to_query(CatalogSchema()).text  # default: the user's only
    restored = DialogueState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.entity_keys() == state.entity_keys()


class Turn:
    def __init__(self, dialog_id, context, mentioned, gold):
        self.dialog_id, self.context, self.mentioned, self.gold = (
            dialog_id,
            context,
            mentioned,
            gold,
        )


LOG = [
    Turn("d1", ["Anything by David Fincher?"], (), ("Zodiac",)),
    Turn("d2", ["I like David Fincher", "Seen Se7en?"], ("Se7en",), ("Zodiac", "Gone Girl")),
    Turn("d3", ["Do you like Tom Hanks?"], (), ("Cast Away",)),
]
TITLES = {it.title: it.item_id for it in ITEMS}


def test_entity_cooc_learned_from_a_dialogue_log(linker):
    counts = learn_entity_cooc(LOG, linker, TITLES)
    assert counts["person:david fincher"] == {"m4": 2.0, "m8": 1.0}
    assert counts["item:m3"] == {"m4": 1.0, "m8": 1.0}
    assert counts["person:tom hanks"] == {"m2": 1.0}
    assert learn_entity_cooc(LOG, linker, TITLES, window=1)["person:david fincher"] == {
        "m4": 1.0
    }  # d2's last utterance only: its Fincher is out of the window


def test_entity_signal_saved_with_collab_and_reaching_candidates(tmp_path, embedder, linker):
    collab = CollabSignals.from_turns(LOG, TITLES).with_entities(
        learn_entity_cooc(LOG, linker, TITLES)
    )
    collab.save(tmp_path / "collab.json")
    collab = CollabSignals.load(tmp_path / "collab.json")
    assert collab.entity_related(["person:tom hanks"], k=5) == [("m2", 1.0)]
    store = ItemStore(str(tmp_path / "chroma"), "items", embedder)
    store.sync(ITEMS, progress=False)
    query = Query(text="", entity_keys=("person:david fincher",))
    only_entities = FusionWeights(dense=0, liked=0, cooc=0, popularity=0, credits=0, entities=1)
    cands = generate_candidates(store, collab, query, k=3, weights=only_entities)
    assert [c.item.item_id for c in cands] == ["m4", "m8"]
    assert all("entities" in c.signals for c in cands)
    assert generate_candidates(store, collab, query, k=3) == generate_candidates(
        store, collab, query, k=3, weights=FusionWeights(entities=0.0)
    )  # off by default


def test_opendialkg_items_list_people(tmp_path):
    record = {
        "name": "Gone Girl",
        "year": "2014",
        "actor": [f"Actor {i}" for i in range(12)],
        "director": ["David Fincher"],
        "writer": ["Gillian Flynn"],
        "genre": ["Thriller"],
    }
    path = tmp_path / "id2info.json"
    path.write_text(json.dumps({"7": record}), encoding="utf-8")
    (item,) = load_catalog(path, "opendialkg").items
    assert "director: David Fincher" in item.text and "writer: Gillian Flynn" in item.text
    assert "Actor 9" in item.text and "Actor 10" not in item.text
    assert keys(EntityLinker([item]), "Gillian Flynn's book") == ["person:gillian flynn"]
