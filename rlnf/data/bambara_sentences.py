"""Bambara sentences written for the rlnf demo corpus.

No Bambara text corpus can be downloaded on the machines this project targets, so the demo corpus is built
from sentences the project writes itself: a small vocabulary (greetings, market, family, numbers, weather,
directions, work) combined through sentence templates, in standard Bambara orthography (ɛ ɔ ɲ ŋ, tones
unmarked). Template combinations are thinned deterministically by hashing the rendered sentence, so the
list is identical on every machine and Python version (no ``random`` involved).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

__all__ = ["TOPICS", "bambara_number", "demo_sentences", "sentences_by_topic"]

TOPICS = ("greetings", "market", "family", "numbers", "weather", "directions", "work")

_UNITS = {
    1: "kelen", 2: "fila", 3: "saba", 4: "naani", 5: "duuru",
    6: "wɔɔrɔ", 7: "wolonwula", 8: "seegin", 9: "kɔnɔntɔn",
}  # fmt: skip

NAMES = ("Musa", "Awa", "Fanta", "Seku", "Bakari", "Aminata", "Mamadu", "Jeneba", "Sitan", "Lamini")
CITIES = ("Bamakɔ", "Sikasɔ", "Segu", "Kayi", "Mɔpti", "Kita", "Kulikɔrɔ", "Kutiyala", "Buguni")
# (pronoun as subject, pronoun as possessor of kin terms)
PRONOUNS = (("Ne", "n"), ("I", "i"), ("A", "a"), ("An", "an"), ("Aw", "aw"), ("U", "u"))
KIN = (
    "fa", "ba", "denkɛ", "denmuso", "dɔgɔkɛ", "dɔgɔmuso", "kɔrɔkɛ", "kɔrɔmuso",
    "muso", "cɛ", "teri", "siginɲɔgɔn", "furuɲɔgɔn", "balima",
)  # fmt: skip
GOODS = (
    "malo", "nɔnɔ", "jɛgɛ", "sogo", "tiga", "mangoro", "namasa", "jaba", "tamati", "buru",
    "shɛ", "fani", "kɔgɔ", "tulu", "sukaro", "ɲɔ", "kaba", "nɛrɛ", "sanbara", "sumbala",
)  # fmt: skip
PROFESSIONS = (
    "sɛnɛkɛla", "jagokɛla", "karamɔgɔ", "dɔgɔtɔrɔ", "numu", "jɛgɛminɛla", "kalanden", "baarakɛla",
    "fanikalanla",
)  # fmt: skip
# (object, verb) pairs: "X bɛ ka <object> <verb>", "X ye <object> <verb>"
TASKS = (
    ("foro", "sɛnɛ"), ("ɲɔ", "tigɛ"), ("nakɔ", "sɛnɛ"), ("misiw", "gɛn"), ("ji", "bɔ"),
    ("so", "jɔ"), ("fani", "karan"), ("jɛgɛ", "minɛ"), ("mobili", "boli"), ("kɔɔri", "ci"),
    ("dumuni", "tobi"), ("lakɔli", "kalan"),
)  # fmt: skip
ACTIVITIES = (
    "dumuni kɛ", "sunɔgɔ", "baara kɛ", "kalan kɛ", "tobili kɛ", "tulon kɛ", "ji min", "fani ko",
    "taama", "sigi",
)  # fmt: skip
PLACES = ("sugu", "dɔgɔtɔrɔso", "lakɔli", "misiri", "meri", "posi", "kɔ", "foro", "nakɔ")
LOCATIONS = ("so", "sugu la", "foro la", "baara la", "lakɔli la", "dɔgɔtɔrɔso la", "misiri la", "nakɔ la")
DIRECTIONS = (
    "yan", "yen", "i kininbolo fɛ", "i numanbolo fɛ", "i ɲɛfɛ", "i kɔfɛ", "misiri kɛrɛfɛ",
    "sugu kɔfɛ", "lakɔli ɲɛfɛ", "kɔ da la",
)  # fmt: skip
FUTURE_TIMES = ("bi", "sini", "sɔgɔma", "wula fɛ", "su fɛ", "sini sɔgɔma", "ɲinɛ")
PAST_TIMES = ("kunu", "sɔgɔma", "kunasini", "san tɛmɛnen", "dɔgɔkun tɛmɛnen")
WEATHER = ("Funteni", "Nɛnɛ", "Fiɲɛ", "Sanji", "Kalaya")
PRICES = (25, 50, 100, 150, 200, 300, 500, 1000)  # francs CFA, spoken in dɔrɔmɛ (5 francs)


def bambara_number(n: int) -> str:
    """Spell ``n`` (1-999) as a Bambara numeral, so the corpus says numbers the way people read them."""
    if not 1 <= n <= 999:
        raise ValueError(f"bambara_number supports 1-999, got {n}")
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    parts = []
    if hundreds:
        parts.append("kɛmɛ" if hundreds == 1 else f"kɛmɛ {_UNITS[hundreds]}")
    if tens:
        parts.append({1: "tan", 2: "mugan"}.get(tens, f"bi {_UNITS.get(tens, '')}".strip()))
    if units:
        parts.append(_UNITS[units])
    return " ni ".join(parts)


def _price(francs: int) -> str:
    return f"dɔrɔmɛ {bambara_number(francs // 5)}"


def _sentence(text: str) -> str:
    """Capitalise the first letter only (names like Bamakɔ keep their case)."""
    return text[:1].upper() + text[1:]


def _thin(combos: Iterable[tuple], render: Callable[..., str], keep: int, salt: str) -> list[str]:
    """Keep ``keep`` renderings of the template, chosen by a stable hash rather than a random generator."""
    rendered = list(dict.fromkeys(_sentence(render(*combo)) for combo in combos))
    ranked = sorted(rendered, key=lambda s: hashlib.sha1(f"{salt}|{s}".encode()).hexdigest())
    chosen = set(ranked[:keep])
    return [s for s in rendered if s in chosen]


def _greetings() -> list[str]:
    times = ("sɔgɔma", "tile", "wula", "su", "ce")
    fixed = [
        "I ni ce.", "Aw ni ce.", "Nba, i ni ce.", "Nse, i ni ce.", "I ka kɛnɛ wa?", "Aw ka kɛnɛ wa?",
        "Tɔɔrɔ si tɛ.", "Hɛrɛ sira wa?", "Hɛrɛ dɔrɔn.", "Somɔgɔw ka kɛnɛ wa?", "U ka kɛnɛ kosɛbɛ.",
        "Ala ka hɛrɛ caya.", "Ala ka su hɛrɛ di an ma.", "Ala ka an kɛnɛya.", "K'an bɛn sini.",
        "K'an bɛn kɔfɛ.", "I tɔgɔ ko di?", "I bɛ bɔ min?", "I ka ŋaniya ka ɲi.",
        "Ala ka ŋaniya ɲuman di an ma.", "I ni baara.", "I ni sɛgɛn.", "Hɛrɛ, ne ka kɛnɛ.",
        "An bɛ ɲɔgɔn ye sini.", "I danse.", "Bisimila, aw ka don.",
    ]  # fmt: skip
    greet = [f"{p} ni {t}." for p in ("I", "Aw") for t in times]
    named = _thin(itertools.product(times, NAMES), lambda t, n: f"i ni {t}, {n}.", 30, "greet-name")
    kin_well = [f"i {k} ka kɛnɛ wa?" for k in KIN[:10]]
    names = [f"n tɔgɔ ko {n}." for n in NAMES]
    origin = [f"n bɛ bɔ {c}." for c in CITIES]
    return fixed + greet + named + [_sentence(s) for s in kin_well + names + origin]


def _market() -> list[str]:
    fixed = [
        "A sɔngɔ ka gɛlɛn.", "A nɔgɔya ne ye.", "Ne tɛ se k'o sara.", "Wari tɛ ne bolo.",
        "Ne bɛna segin sini.", "Sugu ka ca bi.", "Feerekɛla ma na bi.", "Nin ye joli ye?",
        "Ne ka wari banna.", "A sɔngɔ ka di.",
    ]  # fmt: skip
    want = [f"ne b'a fɛ ka {g} san." for g in GOODS]
    price_q = [f"{g} sɔngɔ ye joli ye?" for g in GOODS]
    bought = _thin(
        itertools.product(PRONOUNS, GOODS, PAST_TIMES),
        lambda p, g, t: f"{p[0]} ye {g} san {t}.",
        20,
        "bought",
    )
    sells = _thin(
        itertools.product(NAMES + ("Muso", "Jagokɛla"), GOODS),
        lambda n, g: f"{n} bɛ {g} feere sugu la.",
        20,
        "sells",
    )
    kilo = _thin(
        itertools.product(GOODS, PRICES),
        lambda g, p: f"{g} kilo kelen ye {_price(p)} ye.",
        15,
        "kilo",
    )
    return fixed + [_sentence(s) for s in want + price_q] + bought + sells + kilo


def _family() -> list[str]:
    where = _thin(
        itertools.product(PRONOUNS, KIN, LOCATIONS),
        lambda p, k, loc: f"{p[1]} {k} bɛ {loc}.",
        30,
        "where",
    )
    named = _thin(
        itertools.product(PRONOUNS, KIN[:10], NAMES),
        lambda p, k, n: f"{p[1]} {k} tɔgɔ ko {n}.",
        15,
        "kin-name",
    )
    job = _thin(
        itertools.product(PRONOUNS, KIN, PROFESSIONS),
        lambda p, k, j: f"{p[1]} {k} ye {j} ye.",
        20,
        "kin-job",
    )
    doing = _thin(
        itertools.product(PRONOUNS, KIN, ACTIVITIES),
        lambda p, k, a: f"{p[1]} {k} bɛ ka {a}.",
        25,
        "doing",
    )
    fixed = [
        "Denmisɛnw bɛ ka tulon kɛ.", "Somɔgɔw bɛɛ bɛ so.", "N ba ye dumuni tobi.", "Furu bɛ kɛ sini.",
        "N muso ye den wolo.", "Denmisɛn ka kan ka kalan.",
    ]  # fmt: skip
    return fixed + where + named + job + doing


def _numbers() -> list[str]:
    sums = _thin(
        ((a, b) for a in range(1, 10) for b in range(1, 10)),
        lambda a, b: f"{bambara_number(a)} ni {bambara_number(b)} ye {bambara_number(a + b)} ye.",
        25,
        "sum",
    )
    have = _thin(
        itertools.product(("den", "dɔgɔkɛ", "dɔgɔmuso", "misi", "saga", "shɛ"), range(1, 11), PRONOUNS),
        lambda k, n, p: f"{k} {bambara_number(n)} bɛ {p[1]} fɛ.",
        20,
        "have",
    )
    age = [f"n si ye san {bambara_number(n)} ye." for n in (7, 10, 12, 15, 20, 25, 30, 40, 45, 60)]
    people = [f"mɔgɔ {bambara_number(n)} bɛ yan." for n in (2, 3, 5, 8, 11, 14, 20, 33, 50, 100)]
    count = _thin(
        itertools.product(PRONOUNS, ("mangoro", "namasa", "buru", "shɛ", "jɛgɛ"), range(2, 11)),
        lambda p, g, n: f"{p[0]} ye {g} {bambara_number(n)} san.",
        15,
        "count",
    )
    days = _thin(
        itertools.product(range(2, 11), CITIES),
        lambda n, c: f"ne bɛna tile {bambara_number(n)} kɛ {c}.",
        10,
        "days",
    )
    return sums + [_sentence(s) for s in have + age + people] + count + [_sentence(s) for s in days]


def _weather() -> list[str]:
    fixed = [
        "Sanji nana kunu.", "Sanji ma na kunu.", "Sankolo ka jɛ bi.", "Sankolo bɛ ka fin.",
        "Samiya sera.", "Tilema sera.", "Samiya la, sanji bɛ na tuma bɛɛ.", "Tile ka gɛlɛn bi.",
        "Fiɲɛ bɛ ka fiyɛ.", "Sanji bɛ na wa?", "Bi, waati ka di.", "Kɔ falen don ji la.",
    ]  # fmt: skip
    strong = _thin(
        itertools.product(WEATHER, FUTURE_TIMES[:5], CITIES),
        lambda w, t, c: f"{w} ka bon {c} {t}.",
        25,
        "strong",
    )
    rain = _thin(
        itertools.product(("Sanji", "Fiɲɛ", "Nɛnɛ"), FUTURE_TIMES, ("bɛ na", "tɛ na", "bɛna bon")),
        lambda w, t, v: f"{w} {v} {t}.",
        15,
        "rain",
    )
    return fixed + strong + rain


def _directions() -> list[str]:
    fixed = ["A ka jan.", "A ma jan.", "A ka surun.", "Ne filila sira la.", "I ka sira jira ne la."]
    where = [f"{p} bɛ min?" for p in PLACES]
    at = _thin(itertools.product(PLACES, DIRECTIONS), lambda p, d: f"{p} bɛ {d}.", 25, "at")
    go = _thin(
        itertools.product(("Taa", "Aw ye taa", "I ka taa", "Segin"), DIRECTIONS[2:]),
        lambda v, d: f"{v} {d}.",
        12,
        "go",
    )
    travel = _thin(
        itertools.product(PRONOUNS, CITIES, FUTURE_TIMES),
        lambda p, c, t: f"{p[0]} bɛ taa {c} {t}.",
        25,
        "travel",
    )
    far = [f"{c} ka jan wa?" for c in CITIES] + [f"sira jumɛn bɛ taa {c}?" for c in CITIES]
    return fixed + [_sentence(s) for s in where] + at + go + travel + [_sentence(s) for s in far]


def _work() -> list[str]:
    fixed = [
        "Baara ka ca bi.", "Baara ka gɛlɛn.", "Baara tɛ ne bolo.", "Baara bɛ i bolo wa?",
        "An ka baara banna.", "Baarakɛlaw sɛgɛnna.", "Karamɔgɔ bɛ kalan di denmisɛnw ma.",
        "Dɔgɔtɔrɔ bɛ banabagatɔw furakɛ.",
    ]  # fmt: skip
    works_at = _thin(
        itertools.product(PRONOUNS + tuple((n, n) for n in NAMES), LOCATIONS[1:]),
        lambda p, loc: f"{p[0]} bɛ baara kɛ {loc}.",
        15,
        "works-at",
    )
    is_job = _thin(
        itertools.product(PRONOUNS + tuple((n, n) for n in NAMES), PROFESSIONS),
        lambda p, j: f"{p[0]} ye {j} ye.",
        20,
        "is-job",
    )
    doing = _thin(
        itertools.product(PRONOUNS, TASKS), lambda p, t: f"{p[0]} bɛ ka {t[0]} {t[1]}.", 20, "task-now"
    )
    did = _thin(
        itertools.product(PRONOUNS, TASKS, PAST_TIMES),
        lambda p, t, w: f"{p[0]} ye {t[0]} {t[1]} {w}.",
        20,
        "task-past",
    )
    will = _thin(
        itertools.product(PRONOUNS, TASKS, FUTURE_TIMES[1:]),
        lambda p, t, w: f"{p[0]} bɛna {t[0]} {t[1]} {w}.",
        15,
        "task-future",
    )
    return fixed + works_at + is_job + doing + did + will


_BUILDERS: dict[str, Callable[[], list[str]]] = {
    "greetings": _greetings, "market": _market, "family": _family, "numbers": _numbers,
    "weather": _weather, "directions": _directions, "work": _work,
}  # fmt: skip


@lru_cache(maxsize=1)
def _by_topic() -> tuple[tuple[str, tuple[str, ...]], ...]:
    seen: set[str] = set()
    out = []
    for topic in TOPICS:
        fresh = [s for s in dict.fromkeys(_BUILDERS[topic]()) if s not in seen]
        seen.update(fresh)
        out.append((topic, tuple(fresh)))
    return tuple(out)


def sentences_by_topic() -> dict[str, list[str]]:
    """Topic -> its sentences; no sentence appears under two topics."""
    return {topic: list(sentences) for topic, sentences in _by_topic()}


def demo_sentences(topics: Sequence[str] | None = None) -> list[str]:
    """All distinct demo sentences (topic order, then template order); ``topics`` restricts the list."""
    unknown = set(topics or ()) - set(TOPICS)
    if unknown:
        raise ValueError(f"unknown topics {sorted(unknown)}; choose from {list(TOPICS)}")
    wanted = topics or TOPICS
    return [s for topic, sentences in _by_topic() if topic in wanted for s in sentences]
