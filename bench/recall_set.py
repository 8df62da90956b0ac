"""A labelled set for memory recall: needles among decoys that share their topic words, and
queries that paraphrase each needle with few of its words.

Every fact is a component, a symptom and a condition, each said in one of several ways that
share few words ("the invoice job" / "the billing run" / "generating customer bills").
A needle is the only entry with its (component, condition) pair; its query says two of
component, symptom and condition in other words than the needle, keeps the needle's words
for the third, and has another sentence shape.
Decoys reuse the needles' components and conditions, in every wording (the query's too),
only never both of one needle's together, so the words a query shares with a decoy are
often more than those it shares with its needle. Some groups are close enough for a reader
to take one for the other (CLOSE_COMPONENTS, CLOSE_CONDITIONS); no needle or decoy pairs a
component close to a needle's with a condition close to the same needle's, so every query
has one right answer. That leaves room for about 200 needles. Everything comes from one seed.

A third of the needles also carry an identifier (an error code, a file, a flag, a variable),
as agents' notes do; their queries reword all three parts and name the identifier, the one
word they share. A third of the decoys carry identifiers of the same kinds.

Nothing here is known to the search code: the wordings are the benchmark's, not the index's.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

COMPONENTS = [
    ["the invoice job", "the billing run", "generating customer bills", "the monthly statement batch"],
    ["the login page", "the sign-in screen", "user authentication", "the password form"],
    ["the CSV importer", "loading spreadsheet uploads", "the bulk data import", "ingesting comma-separated files"],
    ["the search index", "full-text lookup", "the query engine for documents", "finding records by keyword"],
    ["the payment webhook", "the callback from the card processor", "charge notifications", "the Stripe hook endpoint"],
    ["the nightly export", "the overnight data dump", "the 2 am extract to the warehouse", "the overnight warehouse feed"],
    ["the mobile client", "the phone app", "the iOS and Android build", "the handset application"],
    ["the email queue", "outgoing mail delivery", "the notification mailer", "sending messages to customers"],
    ["the report builder", "the PDF summaries", "producing dashboards", "the analytics charts"],
    ["the token refresh", "renewing access credentials", "the OAuth session renewal", "re-issuing bearer tokens"],
    ["the database migration", "the schema upgrade", "altering tables on deploy", "the Alembic revision step"],
    ["the CI runner", "the build pipeline", "continuous integration jobs", "the test machines in GitHub Actions"],
    ["the cache layer", "the Redis store", "memoised responses", "the in-memory lookup tier"],
    ["the image resizer", "thumbnail generation", "scaling uploaded photos", "the picture converter"],
    ["the rate limiter", "request throttling", "the per-client quota", "capping calls per minute"],
    ["the audit log", "the compliance trail", "recording who changed what", "the history of admin actions"],
    ["the feature flags", "toggling experiments", "the rollout switches", "gradual release settings"],
    ["the websocket server", "live push updates", "the realtime channel", "streaming events to browsers"],
    ["the tax calculation", "computing VAT", "sales duty amounts", "the levy on each order line"],
    ["the shipping quote", "delivery cost estimates", "the courier price lookup", "freight charges at checkout"],
    ["the translation files", "localised strings", "the i18n catalogue", "interface text in other languages"],
    ["the cron scheduler", "timed background tasks", "the periodic jobs", "recurring work at fixed hours"],
    ["the file upload", "attaching documents", "sending large files to the server", "the multipart form handler"],
    ["the user profile page", "the account settings screen", "editing personal details", "the member info view"],
    ["the inventory sync", "stock level updates", "keeping warehouse counts aligned", "the product quantity feed"],
    ["the logging setup", "the application logs", "writing diagnostic output", "the log shipping agent"],
    ["the GraphQL gateway", "the API front door", "the public endpoint layer", "routing calls to services"],
    ["the PDF parser", "reading scanned documents", "text extraction from PDFs", "the OCR step"],
    ["the session store", "keeping users signed in", "the cookie-backed sessions", "remembering logged-in visitors"],
    ["the message broker", "the Kafka topics", "the event bus", "passing events between services"],
]

SYMPTOMS = [
    ["fails", "crashes", "aborts with an exception", "blows up"],
    ["slows down badly", "takes minutes instead of seconds", "gets very sluggish", "becomes painfully slow"],
    ["returns stale data", "shows outdated values", "serves old results", "is out of date"],
    ["counts some items twice", "double-books entries", "produces duplicate rows", "records things more than once"],
    ["silently drops records", "loses some rows without a warning", "skips data quietly", "leaves entries out"],
    ["hangs forever", "never finishes", "freezes without a timeout", "gets stuck waiting"],
    ["runs out of memory", "uses all the RAM", "is killed by the OOM killer", "leaks memory until it dies"],
    ["shows garbled characters", "mangles accented letters", "prints mojibake", "corrupts non-ASCII text"],
]

CONDITIONS = [
    ["the input has empty lines", "a file contains blank rows", "there are whitespace-only records", "rows are left empty"],
    ["the locale is not English", "the system language is something other than English", "a non-English regional setting is active", "the OS region uses decimal commas"],
    ["two users edit at once", "simultaneous changes collide", "concurrent writers touch one record", "parallel updates race"],
    ["the clock jumps", "the server time shifts during daylight saving", "NTP corrects the system time", "the hour repeats in autumn"],
    ["the disk is nearly full", "free storage runs low", "the volume hits 95 percent", "there is little space left on the drive"],
    ["a field is null", "a value is missing", "an attribute comes back as None", "a column has no content"],
    ["the network drops for a second", "the connection flaps briefly", "wifi cuts out momentarily", "packets are lost for a moment"],
    ["the batch exceeds 1000", "more than a thousand items arrive together", "a chunk has over 1k entries", "big batches are sent"],
    ["the token expired", "credentials are past their lifetime", "the JWT is out of date", "an old bearer token is used"],
    ["the file has a BOM", "a byte order mark starts the file", "the upload begins with the UTF-8 signature", "Excel saves with a leading marker"],
    ["the timezone is UTC+14", "the user lives in Kiribati", "the offset is fourteen hours ahead", "dates cross the far east dateline"],
    ["a deploy runs in parallel", "a release rolls out at the same time", "new code ships mid-run", "the rollout overlaps the job"],
    ["the name contains an apostrophe", "a surname like O'Brien appears", "quotes occur inside names", "a single quote is in the text"],
    ["the amount is negative", "a refund below zero is processed", "credits carry a minus sign", "values under zero show up"],
    ["the request is retried", "the client sends the call again", "a resend follows a timeout", "duplicate submissions arrive"],
    ["the cache is cold", "nothing is warmed after a restart", "the first hit after boot happens", "memoised entries were flushed"],
    ["the payload is over 10 MB", "a very large body is posted", "huge uploads come in", "the message size passes ten megabytes"],
    ["the month has 31 days", "it is the last day of a long month", "the date is the 31st", "month-end falls on day thirty-one"],
    ["emoji are in the text", "people type smileys", "pictographs appear in comments", "4-byte unicode symbols show up"],
    ["the replica lags", "the read copy is behind the primary", "replication falls behind", "the secondary database trails"],
    ["the feature flag is off", "the toggle is disabled", "the experiment switch is false", "the rollout setting is turned off"],
    ["the user has two accounts", "one person registers twice", "duplicate sign-ups exist", "an email is shared by two members"],
    ["the job runs at midnight", "it starts at 00:00", "the schedule fires at twelve at night", "the run begins when the date changes"],
    ["the config file is missing", "settings cannot be found", "no configuration is present", "the YAML settings were deleted"],
    ["the queue backs up", "messages pile up", "the backlog grows past its limit", "consumers fall behind producers"],
    ["the certificate expired", "TLS credentials lapsed", "the SSL cert is past its date", "HTTPS keys are out of validity"],
    ["the browser is Safari", "Apple's web browser is used", "visitors come from an iPhone browser", "WebKit renders the page"],
    ["the price has three decimals", "amounts use fractional cents", "a rate like 0.125 appears", "values carry extra precision"],
    ["the path has spaces", "folder names contain blanks", "a directory like My Documents is used", "file locations include whitespace"],
    ["the worker restarts", "the process is recycled", "a pod gets rescheduled", "the service reboots mid-task"],
]

# Groups whose wordings a careful reader could take for one another ("the scheduled jobs" /
# "the overnight export", "rows are left empty" / "a column has no content"). A query must
# have one right answer, so no other entry (needle or decoy) may pair a component close to
# its needle's with a condition close to its needle's: that entry would be as true of it.
CLOSE_COMPONENTS = [{0, 21}, {5, 21}, {1, 9}, {1, 28}, {9, 28}, {1, 23}, {2, 22}, {2, 24}, {3, 12}, {4, 7},
                    {4, 26}, {7, 29}, {17, 29}, {8, 27}, {13, 27}, {14, 26}, {15, 25}, {18, 19}, {10, 11}]
CLOSE_CONDITIONS = [{0, 5}, {5, 23}, {1, 27}, {2, 11}, {2, 14}, {3, 22}, {10, 22}, {17, 22}, {3, 10}, {6, 14},
                    {7, 16}, {7, 24}, {8, 25}, {9, 18}, {12, 18}, {11, 20}, {11, 29}, {15, 29}, {19, 24},
                    {14, 21}, {13, 27}]


def _near(groups: list[set[int]], size: int) -> list[set[int]]:
    out = [{i} for i in range(size)]
    for group in groups:
        for i in group:
            out[i] |= group
    return out


NEAR_COMPONENT = _near(CLOSE_COMPONENTS, len(COMPONENTS))
NEAR_CONDITION = _near(CLOSE_CONDITIONS, len(CONDITIONS))


def _blocked(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Every (component, condition) pair as true of a query as the needle of one of PAIRS."""
    return {(c, w) for ci, wi in pairs for c in NEAR_COMPONENT[ci] for w in NEAR_CONDITION[wi]}


DECOY_SHAPES = [
    "{c} {s} when {w}",
    "{c} {s} if {w}; seen {n} times",
    "noticed that {c} {s} whenever {w}",
    "{c}: {s} after {w} (ticket {n})",
    "heads-up: when {w}, {c} {s}",
    "{c} {s} once {w}; workaround in PR {n}",
]
NEEDLE_SHAPES = [
    "{c} {s} when {w}",
    "found out {c} {s} whenever {w}",
    "{c} {s} if {w}; fixed in PR {n}",
    "root cause: {c} {s} because {w}",
]
QUERY_SHAPES = [
    "why does {c} {s} when {w}",
    "what goes wrong with {c} if {w}",
    "{c} {s} as soon as {w}",
    "is there a known problem where {c} {s} because {w}",
    "{w} and then {c} {s}",
]

IDENTIFIER_WORDS = ["cache", "retry", "batch", "locale", "token", "import", "export", "queue", "shard", "index",
                    "legacy", "strict", "verbose", "offline", "replay", "audit", "mirror", "quota", "fallback", "sync"]
IDENTIFIER_SHAPES = ["error {E}", "see {f}.yaml", "flag --{w}-{v}", "set {W}_{V}", "exit code {n}", "in {w}_{v}.py"]
DETAIL_SHAPES = ["{t} ({d})", "{t}; {d}", "{t}, {d}"]


def identifier(rng: random.Random) -> str:
    w, v = rng.sample(IDENTIFIER_WORDS, 2)
    return rng.choice(IDENTIFIER_SHAPES).format(E=f"E{rng.randint(1000, 9999)}", f=f"{w}-{rng.randint(10, 99)}",
                                                w=w, v=v, W=w.upper(), V=v.upper(), n=rng.randint(64, 255))


WORDS = re.compile(r"[a-z0-9]+")
FILLER = {"the", "a", "an", "is", "are", "when", "if", "with", "and", "then", "why", "does", "what", "of", "to",
          "in", "on", "at", "by", "for", "there", "known", "problem", "where", "because", "goes", "wrong", "do"}


@dataclass(frozen=True)
class Query:
    text: str
    needle: str  # the needle's text
    family: str  # "paraphrase" (one part in the needle's words) or "identifier" (only that shared)
    dev: bool  # the half the fusion was tuned on; the other half is held out


def content_words(text: str) -> set[str]:
    return {w for w in WORDS.findall(text.lower()) if w not in FILLER}


def _say(shape: str, rng: random.Random, c: str, s: str, w: str) -> str:
    return shape.format(c=c, s=s, w=w, n=rng.randint(2, 999))


def build(queries: int, seed: int = 21) -> tuple[list[str], list[Query], "DecoyStream"]:
    """(needle texts, labelled queries, an endless stream of decoys)."""
    rng = random.Random(seed)
    pairs = [(ci, wi) for ci in range(len(COMPONENTS)) for wi in range(len(CONDITIONS))]
    rng.shuffle(pairs)
    chosen: list[tuple[int, int]] = []
    for pair in pairs:  # no needle may answer another's query
        if len(chosen) < queries and pair not in _blocked(set(chosen)):
            chosen.append(pair)
    needles: list[str] = []
    out: list[Query] = []
    used: set[str] = set()
    for number, (ci, wi) in enumerate(chosen):
        si = rng.randrange(len(SYMPTOMS))
        # the query words two of the three parts differently from the needle, and keeps the
        # needle's words for one: the anchor a person remembers
        c_n, c_q = rng.sample(range(len(COMPONENTS[ci])), 2)
        s_n, s_q = rng.sample(range(len(SYMPTOMS[si])), 2)
        w_n, w_q = rng.sample(range(len(CONDITIONS[wi])), 2)
        family = "identifier" if number % 3 == 2 else "paraphrase"
        if family == "paraphrase":
            kept = rng.randrange(3)
            c_q, s_q, w_q = (c_n if kept == 0 else c_q), (s_n if kept == 1 else s_q), (w_n if kept == 2 else w_q)
        needle = _say(rng.choice(NEEDLE_SHAPES), rng, COMPONENTS[ci][c_n], SYMPTOMS[si][s_n], CONDITIONS[wi][w_n])
        query = _say(rng.choice(QUERY_SHAPES), rng, COMPONENTS[ci][c_q], SYMPTOMS[si][s_q], CONDITIONS[wi][w_q])
        if family == "identifier":
            detail = identifier(rng)
            while detail in used:
                detail = identifier(rng)
            used.add(detail)
            needle = rng.choice(DETAIL_SHAPES).format(t=needle, d=detail)
            query = rng.choice(DETAIL_SHAPES).format(t=query, d=detail)
        needles.append(needle)
        out.append(Query(query, needle, family, dev=number % 2 == 0))
    return needles, out, DecoyStream(set(chosen), used, seed)


class DecoyStream:
    """Decoys in a fixed order: any (component, condition) pair no needle's query could mean,
    every wording. Each still shares its component with some needles and its condition with
    others (every component and condition is some needle's)."""

    def __init__(self, taken: set[tuple[int, int]], needle_identifiers: set[str], seed: int) -> None:
        blocked = _blocked(taken)
        self.free = [(c, w) for c in range(len(COMPONENTS)) for w in range(len(CONDITIONS)) if (c, w) not in blocked]
        if not self.free:
            raise ValueError("too many needles: no pair is left for decoys")
        self.needle_identifiers = needle_identifiers
        self.rng = random.Random(seed * 7919 + 1)

    def next(self) -> str:
        rng = self.rng
        ci, wi = rng.choice(self.free)
        si = rng.randrange(len(SYMPTOMS))
        text = _say(rng.choice(DECOY_SHAPES), rng, rng.choice(COMPONENTS[ci]), rng.choice(SYMPTOMS[si]),
                    rng.choice(CONDITIONS[wi]))
        if rng.random() < 1 / 3:
            detail = identifier(rng)
            while detail in self.needle_identifiers:
                detail = identifier(rng)
            text = rng.choice(DETAIL_SHAPES).format(t=text, d=detail)
        return text

    def take(self, count: int) -> list[str]:
        return [self.next() for _ in range(count)]
