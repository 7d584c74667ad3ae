"""Deterministic marketing-flavoured text: answers, captions, thoughts and refusals.

Every choice is a hash of the request digest and a purpose string, so the same request
always reads the same, and different requests read differently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

_STOPWORD_TEXT = """
a an and are as at be but by for from has have in into is it its of on or our that the
their them this to was we were will with you your make create generate write give please
show me my i us some about over under image picture photo poster banner ad ads advert
advertisement design draw render use using based new very just also can could would should
then than so such like want need get let it's i'm short long text copy json return only
one two three four five each any all more most other which what who whose when where why how
campaign campaigns aimed aiming targeted targeting headline headlines tagline taglines slogan
slogans caption captions catchy compelling marketing version variant variants words sentence
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

HEADLINES = (
    "{Title}, Reimagined",
    "Meet {Title}",
    "Your {A} Moment Starts Here",
    "{Title}: Made to Stand Out",
    "Discover {Title}",
    "The {A} You've Been Waiting For",
    "Say Hello to {Title}",
    "{A} Like Never Before",
)
TAGLINES = (
    "Bold {a}, effortless {b}.",
    "Where {a} meets {b}.",
    "Made for {a}. Built for you.",
    "Everything {a} should be.",
    "Small details, big {a}.",
    "{A} that speaks for itself.",
)
SENTENCES = (
    "Bring {a} and {b} together in one bold, unforgettable look.",
    "Crafted for people who care about {a}, and designed to turn heads.",
    "From the first glance, {title} makes every detail count.",
    "Built around {a}, tuned for {b}, and ready for your audience.",
    "It is the easiest way to make {a} feel fresh again.",
    "Your customers will notice the difference {a} makes from day one.",
    "Every piece is designed to put {a} front and centre.",
    "Light, confident and unmistakably {a}.",
)
CTAS = ("Shop now", "Discover more", "Get started today", "Try it free", "Book your spot",
        "Learn more", "Order yours", "See the collection")
TONES = ("Bold and upbeat", "Warm and friendly", "Calm and premium", "Playful and bright",
         "Confident and modern")
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)


def keywords(prompt: str, *, limit: int = 6) -> list[str]:
    """The prompt's content words, in order, without repeats or filler."""
    seen: list[str] = []
    for match in _WORD.finditer(prompt):
        word = match.group(0).strip("'-")
        lower = word.lower()
        if len(lower) < 3 or lower in STOPWORDS or lower in (w.lower() for w in seen):
            continue
        seen.append(word)
        if len(seen) == limit:
            break
    return seen or ["Brand", "Story"]


def _title(word: str) -> str:
    return word if word[:1].isupper() and not word.isupper() else word.capitalize()


class Copywriter:
    """Writes copy for one request; ``salt`` keeps sibling fields and candidates apart."""

    def __init__(self, prompt: str, digest: str) -> None:
        self.prompt = prompt
        self.digest = digest
        self.words = keywords(prompt)

    def pick(self, options: Sequence[str], *salt: object) -> str:
        return options[self.number(len(options), *salt)]

    def number(self, modulo: int, *salt: object) -> int:
        key = "|".join([self.digest, *map(str, salt)]).encode("utf-8")
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % max(1, modulo)

    def _fill(self, template: str, *salt: object) -> str:
        words = self.words
        shift = self.number(len(words), "shift", *salt)
        a = words[shift % len(words)]
        b = words[(shift + 1) % len(words)] if len(words) > 1 else "style"
        title = " ".join(_title(w) for w in words[:3])
        return template.format(A=_title(a), a=a.lower(), b=b.lower(), Title=title,
                               title=title)

    def headline(self, *salt: object) -> str:
        return self._fill(self.pick(HEADLINES, "headline", *salt), "headline", *salt)

    def tagline(self, *salt: object) -> str:
        return self._fill(self.pick(TAGLINES, "tagline", *salt), "tagline", *salt)

    def sentence(self, *salt: object) -> str:
        return self._fill(self.pick(SENTENCES, "sentence", *salt), "sentence", *salt)

    def paragraph(self, *salt: object) -> str:
        first = self.sentence("p1", *salt)
        second = self.sentence("p2", *salt)
        return first if first == second else f"{first} {second}"

    def cta(self, *salt: object) -> str:
        return self.pick(CTAS, "cta", *salt)

    def phrase(self, *salt: object) -> str:
        start = self.number(len(self.words), "phrase", *salt)
        chosen = [self.words[(start + i) % len(self.words)] for i in range(min(3, len(self.words)))]
        return " ".join(_title(w) for w in chosen)

    def hashtag(self, *salt: object) -> str:
        return "#" + "".join(_title(w) for w in self.phrase(*salt).split()[:2])

    def tone(self, *salt: object) -> str:
        return self.pick(TONES, "tone", *salt)

    # -- whole answers ---------------------------------------------------------------

    def answer(self, *salt: object) -> str:
        """A text model's plain answer: headline, two sentences, a call to action."""
        return (f"**{self.headline(*salt)}**\n\n{self.paragraph(*salt)} "
                f"{self.tagline(*salt)}\n\n{self.cta(*salt)}.")

    def caption(self, ratio: str, size: str) -> str:
        subject = " ".join(self.words[:4])
        return (f"Here is your {ratio} image ({size}) featuring {subject.lower()}: "
                f"{self.tagline('caption')}")

    def thought(self, ratio: str) -> str:
        a = self.words[0].lower()
        b = self.words[1].lower() if len(self.words) > 1 else "the mood"
        return (f"**Planning the {ratio} composition**\n\nI'm focusing on {a} and {b}, "
                "keeping the headline legible and the palette consistent with the brief.")

    def refusal(self) -> str:
        return ("I can't create that image as described. Could you tell me a bit more about "
                f"the scene you have in mind for {self.phrase('refusal').lower()}?")


def apply_limits(text: str, *, max_tokens: int | None,
                 stop_sequences: Sequence[str]) -> tuple[str, str]:
    """Cut ``text`` at a stop sequence or at ``max_tokens``; return it and finishReason."""
    for stop in stop_sequences:
        at = text.find(stop)
        if at >= 0:
            text = text[:at]
    if max_tokens is not None and len(text) > max_tokens * 4:
        return text[: max_tokens * 4], "MAX_TOKENS"
    return text, "STOP"


def split_for_stream(text: str, *, pieces: int = 3) -> list[str]:
    """Split ``text`` into up to ``pieces`` chunks on word boundaries, losing nothing."""
    if len(text) < 24 or pieces <= 1:
        return [text]
    cuts: list[int] = []
    for i in range(1, pieces):
        target = len(text) * i // pieces
        space = text.find(" ", target)
        if space > 0 and (not cuts or space > cuts[-1]) and space < len(text) - 1:
            cuts.append(space + 1)
    bounds = [0, *cuts, len(text)]
    return [text[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
