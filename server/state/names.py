"""Team names: one spelling per team, whatever the case or Unicode form.

A new name is stored NFKC-normalised; its key (NFKC, case-folded, NFKC again) is unique, so
``ALPHA``, ``alpha`` and ``ａｌｐｈａ`` (full-width) cannot be three teams.
"""

import unicodedata
from urllib.parse import quote

MAX_LENGTH = 100


def clean_team_name(raw: str) -> str:
    """The name as stored, or ValueError saying what is wrong with it."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if not name or not name.isprintable():
        raise ValueError("Team names must be non-empty printable text.")
    if len(name) > MAX_LENGTH:
        raise ValueError(f"Team names are at most {MAX_LENGTH} characters long.")
    if name in (".", ".."):
        raise ValueError("A team name cannot be '.' or '..' (it would be a path in links).")
    return name


def name_key(name: str) -> str:
    """What two names must not share: case and compatibility forms ignored."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def team_path(name: str) -> str:
    """The team page's URL path; every character but letters, digits and ``_.-~``
    percent-encoded, ``/`` included, so no name makes a relative or foreign link."""
    return "/teams/" + quote(name, safe="")
