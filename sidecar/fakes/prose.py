"""Plausible assistant answers for the fakes' "prose" mode (`FakeUpstream(prose=True)`).

Why: the default reply ("Hello from fake-X: you said ...") is ideal for exact assertions, but in
`sidecar demo` and its screenshot a screen full of echoes looks like a toy. Here the answer is a few
sentences on the topic the prompt seems to be about, so streams last as long as real ones do, token
counts and costs vary the way real traffic does, and the detail view shows something worth reading.

Deterministic: the same (model, prompt) always gives the same answer, on every run and machine
(the choice is seeded from a SHA-256 of both, not from Python's salted `hash`). Nothing here claims
to be true; it only has to read like an assistant.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

__all__ = ["answer", "TOPICS"]


@dataclass(frozen=True, slots=True)
class Topic:
    """Sentences for one kind of prompt: one opener, 2-4 body sentences in order, maybe a closer."""

    name: str
    trigger: re.Pattern[str]
    openers: tuple[str, ...]
    body: tuple[str, ...]
    closers: tuple[str, ...]


def _t(name: str, trigger: str, openers: tuple[str, ...], body: tuple[str, ...], closers: tuple[str, ...]) -> Topic:
    return Topic(name, re.compile(trigger, re.IGNORECASE), openers, body, closers)


TOPICS: tuple[Topic, ...] = (
    _t("haiku", r"\b(haiku|poem|verse|rhyme)\b",
       ("Here is one for you:", "A small attempt:", "Let me try:"),
       ("Cold keys in the dark,", "the proxy hums on loopback,", "tokens drift like snow.",
        "Requests fall like rain", "through one quiet local port;", "the meter counts drops.",
        "A stream opens wide,", "first token after a breath,", "the rest follows fast."),
       ("I can write another in a different mood if you like.", "")),
    _t("weather", r"\b(weather|forecast|rain|temperature|sunny)\b",
       ("I can't check live conditions, but here is what is typical.", "I don't have real-time weather data."),
       ("Paris in spring usually sees mild afternoons around 15 to 20 degrees Celsius.",
        "Showers come and go quickly, so a light jacket covers most days.",
        "Mornings start cool and often clear up by noon.",
        "For an accurate forecast, a weather service such as Météo-France is the best source.",
        "If you give me a date range, I can suggest what to pack."),
       ("Enjoy the trip!", "")),
    _t("code", r"\b(python|code|function|bug|regex|sql|rust|typescript|refactor|compile|test)\b",
       ("Sure, here is a compact way to do it.", "Good question: the fix is smaller than it looks.",
        "Here is how I would approach it."),
       ("Start by isolating the part that touches the network, so the rest can be tested with plain values.",
        "A dictionary keyed by id keeps the lookups constant-time instead of scanning the list each time.",
        "In Python, `sorted(items, key=lambda r: r.latency_ms)` gives you the order without mutating the input.",
        "Wrap the call in a `try` block and catch only the exceptions you expect, such as `TimeoutError`.",
        "A regular expression like `^\\d{4}-\\d{2}-\\d{2}$` checks the date shape before you parse it.",
        "Write one failing test first; it tells you when the bug is really gone.",
        "Keep the function pure and pass the clock in, so the test does not depend on the time of day."),
       ("Let me know if you want a version with type hints.", "Happy to review the full diff if you paste it.", "")),
    _t("summary", r"\b(summar\w*|tl;?dr|brief|recap|key points)\b",
       ("Here is the short version.", "In brief:", "The main points are these."),
       ("The proposal moves all provider keys into the operating system's keyring.",
        "Applications talk to one local endpoint instead of each vendor's API directly.",
        "Failover between providers happens without changes to the calling code.",
        "Every request is metered, so spend per project becomes visible day by day.",
        "The main risk is a single local point of failure, which a health check mitigates."),
       ("I can expand any of these points.", "")),
    _t("list", r"\b(ideas|list|suggest\w*|names?|options|brainstorm)\b",
       ("A few options:", "Here are some ideas to start from:"),
       ("1. A weekly digest that groups spend by project and model.",
        "2. An alert when a single request costs more than ten cents.",
        "3. A replay button that resends a request to a cheaper model for comparison.",
        "4. A latency heatmap by hour of day.",
        "5. Per-client budgets so one runaway script cannot drain the month.",
        "6. A dry-run mode that estimates cost before sending anything."),
       ("Pick one and I can sketch how it would work.", "")),
    _t("translate", r"\b(translate|french|german|spanish|japanese|in english)\b",
       ("Here is a natural translation.", "Sure."),
       ("« Le modèle répond en moins d'une seconde. »",
        "That reads as: the model answers in under a second.",
        "In German you would say: „Das Modell antwortet in weniger als einer Sekunde.“",
        "Spanish keeps the same order: «El modelo responde en menos de un segundo.»",
        "For a formal register, replace the short verbs with their longer equivalents."),
       ("",)),
    _t("greeting", r"^\W*(hi|hello|hey|good (morning|afternoon|evening))\b",
       ("Hello!", "Hi there!", "Hey!"),
       ("How can I help you today?", "I can answer questions, write and review code, or summarise documents.",
        "Tell me what you are working on and I will do my best."),
       ("",)),
    _t("explain", r"\b(why|how|explain|what is|what are|difference)\b",
       ("Good question.", "Let me explain.", "In short, it comes down to trade-offs."),
       ("A reverse proxy sits between your programs and the services they call, and forwards each request.",
        "Because it sees every request, it can add credentials, measure latency and count tokens in one place.",
        "Time to first token measures how long the model takes to start answering, not how long it talks.",
        "Streaming sends the answer in small pieces, so the user reads while the model is still writing.",
        "A circuit breaker stops sending traffic to a provider that keeps failing and probes it again later.",
        "Rate limits are usually counted per minute, in both requests and tokens, and reset gradually."),
       ("Does that answer it?", "I can go deeper on any part.", "")),
)

GENERAL = _t(
    "general", r"",
    ("Sure.", "Happy to help.", "Here's my take.", "Certainly."),
    ("The short answer is that it depends on how much latency you can tolerate.",
     "Most teams start with the simplest option and measure before optimising.",
     "Costs add up from many small requests more often than from a few large ones.",
     "Caching the repeated part of a prompt can cut input costs noticeably.",
     "A smaller model is often good enough for classification and extraction.",
     "For anything user-facing, stream the answer so the first words appear quickly.",
     "Keep an eye on error rates too: retries are invisible until they are expensive."),
    ("Let me know if you want more detail.", "Hope that helps!", ""),
)


def topic_for(prompt: str) -> Topic:
    """The first topic whose trigger matches the prompt, else the general one."""
    return next((t for t in TOPICS if t.trigger.search(prompt)), GENERAL)


def answer(model: str, prompt: str) -> str:
    """A multi-sentence reply to `prompt`, the same for the same (model, prompt)."""
    topic = topic_for(prompt)
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{prompt}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    if topic.name == "haiku":  # three lines that belong together
        start = 3 * rng.randrange(len(topic.body) // 3)
        body = list(topic.body[start:start + 3])
    else:
        count = min(len(topic.body), rng.randint(2, 4))
        picked = sorted(rng.sample(range(len(topic.body)), count))  # keep the authored order: it reads better
        body = [topic.body[i] for i in picked]
    parts = [rng.choice(topic.openers), *body, rng.choice(topic.closers)]
    sep = "\n" if topic.name in ("haiku", "list") else " "
    return sep.join(p for p in parts if p)
