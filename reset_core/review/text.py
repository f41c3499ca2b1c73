"""Showing model and dataset text safely, and marking what a context does not support.

Candidate and context text comes from models and datasets: it may hold HTML,
Markdown or script. The review page never renders it as HTML; it either shows it in
plain-text elements or passes it through :func:`escape_markdown`, which makes every
Markdown and HTML character literal. Highlighting is applied *after* escaping, so
the only markup in the result is the one we add.

>>> print(escape_markdown("<b>*hi*</b>"))
\\<b\\>\\*hi\\*\\<\\/b\\>
>>> unsupported_spans("Paris is in France", "France borders Spain.")
[(0, 5)]
"""

from __future__ import annotations

import re
import string

# Every ASCII punctuation character may be backslash-escaped in CommonMark, which
# makes it literal: no emphasis, links, HTML tags, tables, headings, math ($) or
# Streamlit's :color[...] directives can start from the escaped text.
_PUNCT = set(string.punctuation)
_TOKEN = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)


def escape_markdown(text: str) -> str:
    """Text that Streamlit's Markdown renders exactly as written (inert, line breaks kept).

    >>> print(escape_markdown("1. $x$ [a](javascript:alert(1))"))
    1\\. \\$x\\$ \\[a\\]\\(javascript\\:alert\\(1\\)\\)
    """
    return _indent_lines(_escape(text))


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in _PUNCT:
            out.append("\\" + ch)
        elif ch == "\r":
            continue
        elif ch == "\n":
            # Two trailing spaces: a hard line break, so the text keeps its lines.
            out.append("  \n")
        elif ch == "\t":
            out.append("    ")
        else:
            out.append(ch)
    return "".join(out)


def _indent_lines(md: str) -> str:
    """Leading spaces would turn a line into a code block or a list continuation."""
    lines = []
    for line in md.split("\n"):
        stripped = line.lstrip(" ")
        n = len(line) - len(stripped)
        lines.append("&nbsp;" * n + stripped if n and stripped.strip() else line)
    return "\n".join(lines)


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


_STOP: frozenset[str] | None = None


def unsupported_spans(answer: str, context: str) -> list[tuple[int, int]]:
    """Character spans of ``answer`` made of content words the ``context`` never uses.

    A content word is a word token (letters or digits) that is not an English stop
    word (scikit-learn's list). Comparison is case-insensitive and exact, so it is a
    cheap, explainable signal for a reviewer, not a faithfulness judge: a paraphrase
    is flagged too. Adjacent flagged words (only spaces between) merge into one span.

    >>> unsupported_spans("The cat sat on 3 mats", "A cat sat there.")
    [(15, 21)]
    """
    global _STOP
    if _STOP is None:
        _STOP = _stop_words()
    known = {t.lower() for t in _TOKEN.findall(context or "")}
    spans: list[tuple[int, int]] = []
    for m in _TOKEN.finditer(answer or ""):
        word = m.group(0).lower()
        if word in _STOP or word in known:
            continue
        start, end = m.span()
        if spans and answer[spans[-1][1] : start].strip() == "":
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def highlight_markdown(text: str, spans: list[tuple[int, int]], color: str = "orange") -> str:
    """Escaped Markdown of ``text`` with ``spans`` shown on a coloured background.

    Each piece is escaped first; only the ``:color-background[…]`` wrapper is ours.

    >>> print(highlight_markdown("a <b> c", [(2, 5)]))
    a :orange-background[\\<b\\>] c
    """
    if color not in {"red", "orange", "yellow", "blue", "green", "violet", "gray"}:
        raise ValueError(f"color: unsupported highlight colour {color!r}")
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos or end <= start or end > len(text):
            raise ValueError(f"spans: overlapping or out of range span {(start, end)}")
        out.append(_escape(text[pos:start]))
        piece = text[start:end]
        # A highlight cannot cross a line break; highlight each line's part.
        out.append(
            "  \n".join(
                f":{color}-background[{_escape(part)}]" if part.strip() else ""
                for part in piece.split("\n")
            )
        )
        pos = end
    out.append(_escape(text[pos:]))
    return _indent_lines("".join(out))
