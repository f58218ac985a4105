"""A compositional Bambara grammar for the demo corpus v2: a lexicon of several hundred words and templates.

No Bambara text corpus can be downloaded where rlnf is developed, so the project writes its own: a lexicon in
standard orthography (ɛ ɔ ɲ ŋ, tones unmarked) and sentence templates with real Bambara structure: the
predicative markers bɛ / tɛ (present, progressive, future), ye / ma (completed, affirmative / negative),
``S ka kan ka V`` (obligation), ``S bɛ N na`` / locatives with postpositions (kɔnɔ, kan, la, fɛ, kɔrɔ ...),
quality verbs (``S ka di``), noun phrases with adjectives and numerals, questions (wa, jɔn, mun, min, joli)
and greetings. Sentences are drawn from a generator seeded by ``seed`` (numpy's PCG64, stable across
machines), so the same seed always gives the same list; with thousands of sentences over a few hundred
words, every word occurs in many sentences and a model has to learn words, not sentences.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

__all__ = ["LEXICON", "TEMPLATES", "bambara_number", "generate_sentences", "lexicon_words"]

_UNITS = {
    1: "kelen", 2: "fila", 3: "saba", 4: "naani", 5: "duuru",
    6: "wɔɔrɔ", 7: "wolonwula", 8: "seegin", 9: "kɔnɔntɔn",
}  # fmt: skip


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


# ---------------------------------------------------------------------------------------------------- lexicon
NAMES = (
    "Musa", "Awa", "Fanta", "Seku", "Bakari", "Aminata", "Mamadu", "Jeneba", "Sitan", "Lamini", "Umu", "Adama",
    "Sali", "Kadi", "Bintu", "Drisa", "Usumani", "Umaru", "Ibrahima", "Solomani", "Nana", "Mariyamu", "Sanba",
    "Yaya", "Kalilu", "Tenin", "Daramani", "Asitan", "Bubakari", "Nɛnɛ", "Safiyatu", "Jakaridja",
)  # fmt: skip
CITIES = (
    "Bamakɔ", "Sikasɔ", "Segu", "Kayi", "Mɔpti", "Kita", "Kulikɔrɔ", "Kutiyala", "Buguni", "Gawo", "Tumutu",
    "Jenne", "Kati", "Nara", "Bandiyagara", "Nɔrɔ",
)  # fmt: skip
PEOPLE = (
    "mɔgɔ", "cɛ", "muso", "den", "denmisɛn", "cɛkɔrɔba", "musokɔrɔba", "karamɔgɔ", "kalanden", "dɔgɔtɔrɔ",
    "sɛnɛkɛla", "jagokɛla", "numu", "jɛli", "jɛgɛminɛla", "baarakɛla", "sofɛri", "tobilikɛla", "kɔrɔsibaga",
    "dugutigi", "sigiɲɔgɔn", "donan", "sungurun", "kamalen", "npogotigi", "cɛkɔrɔ", "fanikalanla", "kɛlɛcɛ",
    "jagoden", "lakɔlidenw",
)  # fmt: skip
KIN = (
    "fa", "ba", "denkɛ", "denmuso", "dɔgɔkɛ", "dɔgɔmuso", "kɔrɔkɛ", "kɔrɔmuso", "teri", "balima",
    "furuɲɔgɔn", "bɛnkɛ", "tɛnin", "mamamuso", "mamacɛ", "fadenw", "badenw", "nimɔgɔ", "facɛ", "bamuso",
)  # fmt: skip
ANIMALS = (
    "misi", "saga", "bakɔrɔn", "sɔ", "fali", "wulu", "jakuma", "shɛ", "kɔnɔ", "jɛgɛ", "sama", "waraba",
    "sonsannin", "bama", "sa", "ɲinɛ", "tori", "ntori", "ɲɔgɔmɛ", "kɔnkɔrɔ", "wɔlɔ", "kankari", "dugukolo",
    "donsokɔnɔ", "kolon", "bɛlɛn", "seri", "zɛrɛ",
)  # fmt: skip
FOOD = (
    "malo", "ɲɔ", "kaba", "sanyo", "fini", "tiga", "shɔ", "nɔnɔ", "ji", "sogo", "buru", "tulu", "kɔgɔ",
    "sukaro", "mangoro", "namasa", "lenburu", "tamati", "jaba", "to", "sumbala", "nɛrɛ", "kafe", "te",
    "dumuni", "nanji", "dɛgɛ", "fɔnɔ", "bɔnbɔn", "sɔsɔ", "baranda", "ɲamu", "kɔɔri", "shitulu", "lalo",
    "foyi", "dɔlɔ", "fɔnio", "mɔni", "seri", "sosi", "zaban", "woso", "kaba kɔgɔ", "ŋɔmi",
)  # fmt: skip
GOODS = (
    "fani", "wari", "sanu", "warijɛ", "nɛgɛ", "muru", "daba", "tasa", "daga", "minan", "filen", "sigilan",
    "tabali", "mobili", "nɛgɛso", "moto", "bɔrɔ", "dulɔki", "kulusi", "sanbara", "fula", "gafe", "sɛbɛn",
    "kalamu", "telefɔni", "arajo", "fitinɛ", "sabuni", "fura", "furakisɛ", "kunkolo", "tɛrɛn", "finimugu",
    "dɔn", "jalan", "taba", "sɛmɛ", "kurun", "bara", "jɛnɛ", "kolon", "bɛrɛ", "jurukisɛ", "falakisɛ",
    "lampan", "kalo", "kunnafoni", "sisan", "ŋɔni",
)  # fmt: skip
PLACES = (
    "so", "sugu", "foro", "nakɔ", "lakɔli", "dɔgɔtɔrɔso", "misiri", "meri", "posi", "kɔ", "dugu", "kungo",
    "sira", "kalanso", "gwa", "bulon", "kɛnɛ", "jiidaga", "baarakɛyɔrɔ", "sugubaw", "togo", "kɔda", "falaba",
    "kulu", "sanfɛ", "dugumɛ", "duguba", "sotigi",
)  # fmt: skip
BODY = (
    "kun", "ɲɛ", "tulo", "da", "nun", "bolo", "sen", "disi", "kunsigi", "ɲin", "nɛn", "kamankun",
    "bolokɔni", "senkɔni", "fari", "joli", "dusukun", "kɔnɔbara", "kɔ", "sɔgɔma",
)  # fmt: skip
WEATHER = (
    "sanji", "funteni", "nɛnɛ", "fiɲɛ", "kalaya", "tile", "kalo", "dolo", "sankolo", "sanpɛrɛn", "bugun",
    "sankaba", "samiya", "tilema", "fonena", "ji",
)  # fmt: skip
WEEKDAYS = ("Ntɛnɛn", "Tarata", "Araba", "Alamisa", "Juma", "Sibiri", "Kari")  # time words of both tenses
TIMES_PRESENT = (
    "bi",
    "sisan",
    "sini",
    "sɔgɔma",
    "wula fɛ",
    "su fɛ",
    "sini sɔgɔma",
    "dɔgɔkun nata",
    "san nata",
    *WEEKDAYS,
    "sɔgɔmada",
    "tilelafana",
)
TIMES_PAST = (
    "kunu",
    "kunasini",
    "sɔgɔma",
    "dɔgɔkun tɛmɛnen",
    "san tɛmɛnen",
    "kalo tɛmɛnen",
    "bi",
    "kunu su",
    *WEEKDAYS,
    "fɔlɔfɔlɔ",
)
# Transitive verbs: (verb, objects it takes). Each template "S bɛ O V", "S ye O V" ... picks an allowed object.
TRANSITIVE: dict[str, tuple[str, ...]] = {
    "dun": FOOD[:24] + ("dumuni", "nanji", "baranda", "ɲamu", "fɔnio"),
    "min": ("ji", "nɔnɔ", "kafe", "te", "nanji", "dɛgɛ", "lenburu ji", "dɔlɔ", "sukaro ji", "bɔnbɔn"),
    "san": FOOD + GOODS,
    "feere": FOOD + GOODS + ANIMALS[:8],
    "ye": ANIMALS + PEOPLE + KIN + GOODS[:20] + PLACES[:12],
    "dɔn": PEOPLE + KIN + PLACES + ("kunnafoni", "sira", "kan", "baara", "ŋaniya"),
    "ta": GOODS + FOOD[:12],
    "tobi": ("malo", "ɲɔ", "sogo", "jɛgɛ", "to", "shɔ", "tiga", "sanyo", "fini", "dumuni", "nanji", "kaba"),
    "ko": ("fani", "dulɔki", "kulusi", "tasa", "daga", "minan", "bolo", "sen", "ɲɛ", "mobili", "moto", "so"),
    "tigɛ": ("sogo", "ɲɔ", "nɛgɛ", "bɛrɛ", "jiri", "fani", "bolokɔni", "buru", "tamati", "lenburu"),
    "minɛ": ANIMALS + ("bolo", "muru", "daba", "kalamu", "wari"),
    "sɔrɔ": GOODS + FOOD[:16] + ("baara", "hɛrɛ", "kɛnɛya", "kunnafoni"),
    "jɔ": ("so", "bulon", "gwa", "lakɔli", "misiri", "dɔgɔtɔrɔso", "kalanso", "sigilan", "tabali", "togo"),
    "sɛnɛ": ("foro", "nakɔ", "malo", "ɲɔ", "kaba", "sanyo", "fini", "tiga", "kɔɔri", "shɔ", "tamati"),
    "kalan": ("gafe", "sɛbɛn", "kunnafoni", "Kurana", "bamanankan", "faransikan", "jate", "lɛtɛrɛ"),
    "sɛbɛn": ("lɛtɛrɛ", "sɛbɛn", "tɔgɔ", "kunnafoni", "jate", "bamanankan", "gafe"),
    "ɲini": GOODS + ANIMALS[:14] + PEOPLE[:12] + KIN + ("baara", "sira", "fura"),
    "wele": PEOPLE + KIN + NAMES[:10],
    "dɛmɛ": PEOPLE + KIN,
    "bugɔ": ANIMALS[:12] + ("wulu", "dunun", "bɛrɛ"),
    "ladon": ANIMALS[:10] + ("den", "denmisɛn", "denkɛ", "denmuso"),
    "gɛn": ANIMALS[:12] + ("mobili", "moto", "nɛgɛso"),
    "boli": ("mobili", "moto", "nɛgɛso", "kurun", "tɛrɛn"),
    "karan": ("fani", "dulɔki", "kulusi", "fula", "bɔrɔ"),
    "labɛn": ("dumuni", "so", "gwa", "foro", "mobili", "moto", "sira", "baara", "kalan", "ɲɔgɔnye", "sɔn"),
    "kɔlɔsi": PEOPLE + ANIMALS[:12] + ("foro", "so", "den", "dugu"),
    "sara": PEOPLE[:12] + ("wari", "juru", "baara", "sɔngɔ", "nisɔngɔ"),
    "lamɛn": ("arajo", "kunnafoni", "jɛli", "karamɔgɔ", "dɔnkili", "kuma", "ba", "fa"),
    "fɔ": ("kuma", "dɔnkili", "kunnafoni", "tiɲɛ", "nkalon", "tɔgɔ", "jate", "ŋaniya"),
    "bɔ": ("ji", "sanu", "wari", "fani", "kunnafoni"),
    "ci": ("lɛtɛrɛ", "kunnafoni", "wari", "den", "denmisɛn"),
    "yira": ("sira", "so", "sugu", "foro", "gafe", "sɛbɛn", "wari"),
    "tila": ("dumuni", "wari", "sogo", "buru", "foro", "baara", "mangoro"),
    "faga": ("sa", "ɲinɛ", "saga", "shɛ", "bakɔrɔn", "misi", "kɔnɔ", "jɛgɛ"),
    "kanu": PEOPLE + KIN + NAMES[:8],
    "suma": ("malo", "ɲɔ", "kaba", "fani", "tulu", "sukaro", "kɔgɔ", "wari", "ji"),
    "kunun": ("den", "denmisɛn", "cɛkɔrɔba", "musokɔrɔba", "sungurun", "kamalen", "teri"),
}
INTRANSITIVE = (
    "taa", "na", "sunɔgɔ", "sigi", "wuli", "boli", "taama", "dɔn", "kasi", "yɛlɛ", "seli", "bin", "se",
    "segin", "lafiɲɛ", "jigin", "yɛlɛn", "bana", "kɛnɛya", "sɛgɛn", "kalan", "baara", "tulon kɛ", "dumuni kɛ",
    "tobili kɛ", "kɛlɛ kɛ", "jago kɛ", "dɔnkili da", "ɲɛnajɛ", "kuma", "sɔn", "siran", "fatu", "ɲɛgɛn",
    "kɔrɔ", "bonya", "nɔrɔ", "kolon",
)  # fmt: skip
# Quality verbs for "S ka Q" / "S man Q".
QUALITY = (
    "ɲi", "jugu", "bon", "dɔgɔ", "jan", "surun", "gɛlɛn", "nɔgɔn", "di", "kalan", "suma", "girin", "ca",
    "kɔrɔ", "fisa", "teli", "farin", "jɛ", "fin", "bilen", "sanu", "tiya", "ɲɛnaman",
)  # fmt: skip
ADJECTIVES = (
    "ɲuman", "jugu", "belebele", "fitinin", "kura", "kɔrɔ", "jan", "surun", "gɛlɛn", "nɔgɔman", "kalaman",
    "sumalen", "jɛman", "finman", "bilenman", "nɛrɛmuguman", "binkɛnɛman", "duman", "kumuman", "kɔgɔman",
    "girinman", "saniyalen", "nɔgɔlen", "jalen", "cɛnin", "nafama", "tiyalen", "ba", "misɛn", "caman",
)  # fmt: skip
DETERMINERS = ("nin", "o", "dɔ", "bɛɛ", "ninnu", "dɔw")
POSTPOSITIONS = ("kɔnɔ", "kan", "la", "fɛ", "kɔrɔ", "kɔfɛ", "ɲɛfɛ", "kɛrɛfɛ", "da la", "cɛma", "kɔ", "ɲɛ")
PRONOUNS = ("n", "i", "a", "an", "aw", "u")
EMPHATIC = ("ne", "e", "ale", "anw", "aw", "olu")
ADVERBS = ("kosɛbɛ", "dɔɔni", "joona", "teliya la", "nɔgɔya la", "tuguni", "fana", "dɔrɔn", "hali bi", "tun")
GREETING_TIMES = ("sɔgɔma", "tile", "wula", "su", "ce", "baara", "sɛgɛn", "kɛnɛ", "somɔgɔw", "ɲɔgɔn")
_NUMBERS = tuple(list(range(1, 13)) + [15, 20, 25, 30, 40, 50, 60, 100, 200])

LEXICON: dict[str, tuple[str, ...]] = {
    "names": NAMES, "cities": CITIES, "people": PEOPLE, "kin": KIN, "animals": ANIMALS, "food": FOOD,
    "goods": GOODS, "places": PLACES, "body": BODY, "weather": WEATHER, "times": TIMES_PRESENT + TIMES_PAST,
    "transitive": tuple(TRANSITIVE), "intransitive": INTRANSITIVE, "quality": QUALITY, "adjectives": ADJECTIVES,
    "determiners": DETERMINERS, "postpositions": POSTPOSITIONS, "pronouns": PRONOUNS + EMPHATIC,
    "adverbs": ADVERBS, "greetings": GREETING_TIMES,
}  # fmt: skip


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _words(text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")]


# ---------------------------------------------------------------------------------------------- phrase makers
class _Gen:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def number(self) -> str:
        return bambara_number(int(self.pick(_NUMBERS[:12] if self.chance(0.8) else _NUMBERS)))

    def subject(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.pick(PRONOUNS)
        if r < 0.5:
            return self.pick(NAMES)
        if r < 0.7:
            return f"{self.pick(PRONOUNS + NAMES[:12])} {self.pick(KIN)}"
        if r < 0.85:
            return self.pick(PEOPLE) + ("w" if self.chance(0.3) and not self.pick(PEOPLE).endswith("w") else "")
        return f"{self.pick(PEOPLE)} {self.pick(('nin', 'o', 'dɔ', 'kɔrɔ', 'kura', 'fitinin', 'jan'))}"

    def noun_phrase(self, noun: str) -> str:
        """noun [adjective] [number | determiner | plural]"""
        parts = [noun]
        if self.chance(0.35):
            parts.append(self.pick(ADJECTIVES))
        r = self.rng.random()
        if r < 0.25:
            parts.append(self.number())
        elif r < 0.4:
            parts.append(self.pick(DETERMINERS))
        elif r < 0.5 and not noun.endswith("w"):
            parts[-1] += "w"
        return " ".join(parts)

    def transitive(self) -> tuple[str, str]:
        verb = self.pick(tuple(TRANSITIVE))
        return verb, self.noun_phrase(self.pick(TRANSITIVE[verb]))

    def location(self) -> str:
        r = self.rng.random()
        if r < 0.25:
            return self.pick(CITIES)
        place = self.pick(PLACES + GOODS[:14] + ANIMALS[:6])
        if self.chance(0.25):
            place += " " + self.pick(ADJECTIVES[:12])
        return f"{place} {self.pick(POSTPOSITIONS)}"

    def time(self, past: bool = False) -> str:
        return self.pick(TIMES_PAST if past else TIMES_PRESENT)


# ------------------------------------------------------------------------------------------------- templates
def _present(g: _Gen) -> str:  # S bɛ O V [time|place]
    verb, obj = g.transitive()
    tail = [g.time()] if g.chance(0.35) else [g.location()] if g.chance(0.25) else []
    return " ".join([g.subject(), "bɛ", obj, verb, *tail]) + "."


def _progressive(g: _Gen) -> str:  # S bɛ ka O V
    verb, obj = g.transitive()
    return " ".join([g.subject(), "bɛ ka", obj, verb, *([g.location()] if g.chance(0.3) else [])]) + "."


def _negative_present(g: _Gen) -> str:  # S tɛ O V
    verb, obj = g.transitive()
    return " ".join([g.subject(), "tɛ", obj, verb, *([g.time()] if g.chance(0.4) else [])]) + "."


def _past(g: _Gen) -> str:  # S ye O V [time]
    verb, obj = g.transitive()
    return " ".join([g.subject(), "ye", obj, verb, *([g.time(past=True)] if g.chance(0.5) else [])]) + "."


def _negative_past(g: _Gen) -> str:  # S ma O V
    verb, obj = g.transitive()
    return " ".join([g.subject(), "ma", obj, verb, *([g.time(past=True)] if g.chance(0.4) else [])]) + "."


def _future(g: _Gen) -> str:  # S na O V / S bɛna O V
    verb, obj = g.transitive()
    return " ".join([g.subject(), g.pick(("na", "bɛna")), obj, verb, g.time()]) + "."


def _obligation(g: _Gen) -> str:  # S ka kan ka O V
    verb, obj = g.transitive()
    return " ".join([g.subject(), "ka kan ka", obj, verb, *([g.time()] if g.chance(0.3) else [])]) + "."


def _intransitive(g: _Gen) -> str:  # S bɛ V / S Vla / S tɛ V / S ma V
    verb = g.pick(INTRANSITIVE)
    marker = g.pick(("bɛ", "tɛ", "ma", "bɛna", "ka kan ka"))
    tail = [g.pick(ADVERBS)] if g.chance(0.3) else [g.time(past=marker == "ma")] if g.chance(0.4) else []
    return " ".join([g.subject(), marker, verb, *tail]) + "."


def _motion(g: _Gen) -> str:  # S bɛ taa PLACE / S taara CITY kunu / S bɔra PLACE
    subject = g.subject()
    place = g.pick(CITIES) if g.chance(0.4) else f"{g.pick(PLACES)} la"
    r = g.rng.random()
    if r < 0.4:
        return f"{subject} bɛ taa {place} {g.time()}."
    if r < 0.7:
        return f"{subject} {g.pick(('taara', 'nana', 'bɔra', 'sera', 'seginna'))} {place} {g.time(past=True)}."
    return f"{subject} tɛ taa {place}{' ' + g.time() if g.chance(0.5) else ''}."


def _locative(g: _Gen) -> str:  # N bɛ PLACE POSTP / N tɛ ...
    thing = g.noun_phrase(g.pick(ANIMALS + GOODS + FOOD + PEOPLE))
    return f"{_cap(thing)} {g.pick(('bɛ', 'bɛ', 'tɛ'))} {g.location()}."


def _state(g: _Gen) -> str:  # S bɛ N na (S is at / doing N)
    activity = g.pick(("baara", "kalan", "dumuni", "sunɔgɔ", "tobili", "jago", "sɛnɛ", "seli", "tulon",
                       "taama", "kɛlɛ", "ɲɔgɔnye", "kuma", "bana", "sɛgɛn"))  # fmt: skip
    return f"{g.subject()} {g.pick(('bɛ', 'tɛ'))} {activity} na{' ' + g.time() if g.chance(0.4) else ''}."


def _quality(g: _Gen) -> str:  # N ka Q [kosɛbɛ] / N man Q
    noun = g.pick(FOOD + GOODS + ANIMALS + PLACES + WEATHER + BODY + PEOPLE)
    if g.chance(0.3):
        noun += " " + g.pick(DETERMINERS[:3])
    marker = "ka" if g.chance(0.7) else "man"
    return f"{noun} {marker} {g.pick(QUALITY)}{' ' + g.pick(ADVERBS[:4]) if g.chance(0.4) else ''}."


def _weather(g: _Gen) -> str:
    w = g.pick(WEATHER)
    r = g.rng.random()
    if r < 0.35:
        return f"{w} {g.pick(('bɛ', 'tɛ', 'bɛna'))} {g.pick(('na', 'bin', 'caya', 'ban', 'kɛ'))} {g.time()}."
    if r < 0.7:
        return f"{w} ka {g.pick(QUALITY[:14])} {g.time()}{' ' + g.pick(ADVERBS[:3]) if g.chance(0.4) else ''}."
    return f"{w} {g.pick(('nana', 'binna', 'cayara', 'banna'))} {g.time(past=True)}."


def _give(g: _Gen) -> str:  # S ye O di X ma
    obj = g.noun_phrase(g.pick(GOODS + FOOD))
    recipient = g.pick((g.pick(NAMES), f"{g.pick(PRONOUNS)} {g.pick(KIN)}", g.pick(PEOPLE), g.pick(PRONOUNS)))
    return f"{g.subject()} {g.pick(('ye', 'bɛ', 'ma', 'na'))} {obj} di {recipient} ma."


def _question_yesno(g: _Gen) -> str:  # ... wa?
    verb, obj = g.transitive()
    marker = g.pick(("bɛ", "ye", "tɛ", "ma", "na"))
    return f"{g.subject()} {marker} {obj} {verb} wa?"


def _question_who(g: _Gen) -> str:  # Jɔn ye O V? / Jɔn bɛ PLACE?
    verb, obj = g.transitive()
    if g.chance(0.6):
        return f"Jɔn {g.pick(('ye', 'bɛ', 'tɛ', 'ma', 'na'))} {obj} {verb}{' ' + g.time() if g.chance(0.3) else ''}?"
    return f"Jɔn bɛ {g.location()}?"


def _question_what(g: _Gen) -> str:  # S bɛ mun V? / Mun bɛ PLACE? / S bɛ taa min? / joli
    r = g.rng.random()
    if r < 0.35:
        verb = g.pick(tuple(TRANSITIVE))
        return f"{g.subject()} {g.pick(('bɛ', 'ye', 'na'))} mun {verb}{' ' + g.time() if g.chance(0.4) else ''}?"
    if r < 0.6:
        return f"Mun bɛ {g.location()}?"
    if r < 0.8:
        return f"{g.subject()} bɛ taa min {g.time()}?"
    noun = g.pick(FOOD + GOODS + ANIMALS)
    return f"{noun} {g.pick(('ye', 'sɔngɔ ye', 'bɛ'))} joli ye?" if g.chance(0.5) else f"{noun} joli bɛ {g.location()}?"


def _price(g: _Gen) -> str:
    thing = g.noun_phrase(g.pick(FOOD + GOODS + ANIMALS[:8]))
    return f"{thing} sɔngɔ ye dɔrɔmɛ {bambara_number(int(g.pick((5, 10, 20, 25, 40, 50, 100, 200))))} ye."


def _greeting(g: _Gen) -> str:
    r = g.rng.random()
    who = g.pick(NAMES)
    if r < 0.3:
        return f"{g.pick(('I', 'Aw'))} ni {g.pick(GREETING_TIMES)}, {who}."
    if r < 0.5:
        return f"{who}, {g.pick(('i', 'aw'))} ka kɛnɛ wa?"
    if r < 0.65:
        return f"{g.pick(PRONOUNS)} {g.pick(KIN)} ka kɛnɛ wa?"
    if r < 0.8:
        return f"Ala ka {g.pick(('hɛrɛ', 'kɛnɛya', 'baraji', 'nafa', 'sini', 'ŋaniya ɲuman'))} di {g.pick(PRONOUNS)} {g.pick(KIN)} ma."
    if r < 0.9:
        return f"{who} tɔgɔ ye {g.pick(NAMES)} ye."
    return f"{g.pick(('I', 'Aw', 'A', 'U'))} bɛ bɔ {g.pick(CITIES)} wa?"


def _body(g: _Gen) -> str:  # N kun bɛ a dimi / S bolo ka ...
    owner = g.pick((g.pick(PRONOUNS), g.pick(NAMES), g.pick(PEOPLE)))
    part = g.pick(BODY)
    if g.chance(0.5):
        return f"{owner} {part} bɛ {g.pick(PRONOUNS[2:3])} dimi {g.pick(ADVERBS[:2] + TIMES_PRESENT[:3])}."
    return f"{owner} ye {g.pick(PRONOUNS[2:3])} {part} {g.pick(('ko', 'tigɛ', 'minɛ', 'yira', 'jira'))}."


TEMPLATES: dict[str, tuple[float, Callable[[_Gen], str]]] = {
    "present": (3, _present), "progressive": (2, _progressive), "negative_present": (1.5, _negative_present),
    "past": (3, _past), "negative_past": (1.5, _negative_past), "future": (1.5, _future),
    "obligation": (1.5, _obligation), "intransitive": (2, _intransitive), "motion": (2, _motion),
    "locative": (2, _locative), "state": (1, _state), "quality": (1.5, _quality), "weather": (1, _weather),
    "give": (1, _give), "question_yesno": (1, _question_yesno), "question_who": (1, _question_who),
    "question_what": (1.5, _question_what), "price": (1, _price), "greeting": (1, _greeting), "body": (1, _body),
}  # fmt: skip
MIN_WORDS, MAX_WORDS = 3, 10


@lru_cache(maxsize=8)
def _generate(n: int, seed: int) -> tuple[tuple[str, str], ...]:
    rng = np.random.default_rng([seed, 20261202])
    g = _Gen(rng)
    names = list(TEMPLATES)
    weights = np.array([TEMPLATES[k][0] for k in names], dtype=float)
    weights /= weights.sum()
    seen: dict[str, str] = {}
    attempts = 0
    while len(seen) < n:
        attempts += 1
        if attempts > 50 * n:
            raise RuntimeError(f"the grammar produced only {len(seen)} distinct sentences, wanted {n}")
        template = names[int(rng.choice(len(names), p=weights))]
        sentence = _cap(" ".join(TEMPLATES[template][1](g).split()))
        if MIN_WORDS <= len(_words(sentence)) <= MAX_WORDS and sentence not in seen:
            seen[sentence] = template
    return tuple(seen.items())


def generate_sentences(n: int = 6000, *, seed: int = 0, with_templates: bool = False) -> list:
    """``n`` distinct sentences (3-10 words), the same for the same ``(n, seed)``; a larger ``n`` with the same
    seed extends the list (the first ``n`` are a prefix). ``with_templates`` gives ``(sentence, template)``."""
    items = _generate(n, seed)
    return list(items) if with_templates else [s for s, _ in items]


def lexicon_words() -> set[str]:
    """Every distinct word the grammar can say (lower case), numerals included."""
    words = {w for group in LEXICON.values() for entry in group for w in _words(entry)}
    for verb, objects in TRANSITIVE.items():
        words.update(_words(verb))
        words.update(w for o in objects for w in _words(o))
    words.update(_words(" ".join(bambara_number(k) for k in (*_NUMBERS, 5, 10, 20, 25, 40, 50, 100, 200))))
    words.update(("bɛ", "tɛ", "ye", "ma", "ka", "kan", "na", "bɛna", "man", "taa", "wa", "jɔn", "mun", "min",
                  "joli", "di", "ni", "ala", "sɔngɔ", "dɔrɔmɛ", "tɔgɔ", "dimi", "bɔ", "kɛnɛ"))  # fmt: skip
    return words
