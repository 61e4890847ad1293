"""The Cypher guard: a query given to :func:`dlprov.graph.cypher` may only read the graph.

The graph is opened read-only (ladybug refuses every write then), but a read-only database still
runs ``COPY … TO`` (writes a file), ``LOAD FROM`` (reads any file, or a Python object of the
caller), ``EXPORT DATABASE``, ``CALL`` of configuration and file functions, and could be asked to
``INSTALL`` extensions. So before it runs, the query is split into tokens the way ladybug's lexer
splits it (strings with backslash escapes, backquoted names with doubled backquotes, ``//`` and
``/* */`` comments), and a clause keyword that writes, touches files or controls the engine is
refused, as is a ``CALL`` of anything but the catalogue functions below. The same words as names
pass: in strings, in backquotes, as properties (``n.set``), labels (``:Copy``), map keys and
variables followed by ``:`` (``{load: 1}``, ``(load:Entity)``), parameters (``$set``) and aliases
(``AS copy``); any other use of such a name must be backquoted.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from dlprov.errors import QueryError, ReadOnlyViolation

#: Clause keywords refused, with what they would do.
REFUSED = {
    **dict.fromkeys(("CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "ALTER",
                     "COMMENT"), "writes the graph"),
    **dict.fromkeys(("COPY", "LOAD", "EXPORT", "IMPORT", "ATTACH", "USE"),
                    "reads or writes files or other databases"),
    **dict.fromkeys(("INSTALL", "UNINSTALL"), "installs engine extensions"),
    **dict.fromkeys(("BEGIN", "COMMIT", "ROLLBACK", "CHECKPOINT"), "controls transactions"),
}

#: Functions ``CALL`` may run: they read the catalogue, nothing else.
CALLABLE = frozenset({"show_tables", "table_info", "show_connection", "show_functions",
                      "show_indexes", "show_macros", "show_sequences", "show_warnings",
                      "db_version", "storage_version", "catalog_version", "current_setting"})

_TOKENS = re.compile(r"""
    (?P<skip>\s+ | //[^\r\n]* | /\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.)*' | "(?:[^"\\]|\\.)*")
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<word>\w+)
  | (?P<unterminated>['"`] | /\*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class Token(NamedTuple):
    kind: str  # string, quoted, word or other
    text: str
    start: int


def tokens(query: str) -> list[Token]:
    """The tokens of ``query``, without whitespace and comments. Raises :class:`QueryError`
    for a string, name or comment left open (ladybug would not parse it either)."""
    found = []
    for match in _TOKENS.finditer(query):
        if match.lastgroup == "unterminated":
            raise QueryError(f"Cypher failed: {match.group()} at character {match.start()} "
                             "is never closed")
        if match.lastgroup != "skip":
            found.append(Token(match.lastgroup, match.group(), match.start()))
    return found


def _is_name(found: list[Token], i: int) -> bool:
    """Whether the word at ``i`` stands where Cypher only takes a name."""
    before = found[i - 1].text.upper() if i else ""
    after = found[i + 1].text if i + 1 < len(found) else ""
    return before in (".", ":", "$", "AS") or after in (":", ".")


def _callee(found: list[Token], i: int) -> str:
    name = found[i + 1] if i + 1 < len(found) else None
    if name is None or name.kind not in ("word", "quoted"):
        return ""
    opens = i + 2 < len(found) and found[i + 2].text == "("
    text = name.text[1:-1].replace("``", "`") if name.kind == "quoted" else name.text
    return text.lower() if opens else ""


def check(query: str) -> None:
    """Raise :class:`ReadOnlyViolation` naming the first clause of ``query`` that would write,
    touch a file or another database, install an extension, control a transaction, or ``CALL``
    a function other than the catalogue ones (:data:`CALLABLE`)."""
    found = tokens(query)
    for i, token in enumerate(found):
        if token.kind != "word" or _is_name(found, i):
            continue
        word = token.text.upper()
        if word in REFUSED:
            raise ReadOnlyViolation(
                f"Cypher refused: {word} (at character {token.start}) {REFUSED[word]}; dlprov "
                "graph cypher only reads the provenance graph (a variable or alias spelled like "
                f"it goes in backquotes: `{token.text}`)")
        if word == "CALL" and _callee(found, i) not in CALLABLE:
            raise ReadOnlyViolation(
                f"Cypher refused: CALL (at character {token.start}) may only run the catalogue "
                f"functions {', '.join(sorted(CALLABLE))}; dlprov graph cypher only reads the "
                "provenance graph")
