"""TOML syntax errors in words, all of them: the duplicated key's name, the unclosed string.

`tomllib` stops at the first error with a terse phrase. `syntax_errors` explains it from the
text around it, blanks the line at fault and parses again, so several independent errors of
one file are reported together.
"""

from __future__ import annotations

import re
import tomllib

_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]")
_MAX_ERRORS = 20

SyntaxProblem = tuple[int, int, str]  # line, column (1-based), explanation


def syntax_errors(text: str) -> list[SyntaxProblem]:
    """Every syntax error found in `text` (empty when it parses)."""
    lines = text.split("\n")
    found: list[SyntaxProblem] = []
    seen: set[tuple[int, str]] = set()
    for _ in range(_MAX_ERRORS):
        try:
            tomllib.loads("\n".join(lines))
            break
        except tomllib.TOMLDecodeError as exc:
            phrase = _POS.sub("", str(exc)).replace("(at end of document)", "").strip()
            m = _POS.search(str(exc))
            line, column = (int(m.group(1)), int(m.group(2))) if m else _unclosed_quote(lines)
            line, column, words, culprit = _explain(lines, phrase, line, column)
            if (culprit, phrase) in seen or not 1 <= culprit <= len(lines):
                break
            seen.add((culprit, phrase))
            found.append((line, column, f"{words} (TOML: {phrase})" if words != phrase else phrase))
            # Neutralise the faulty line and look for the next, independent error.
            lines[culprit - 1] = f"[__syncd_dup_{culprit}]" if _HEADER.match(lines[culprit - 1]) else ""
            if words.startswith(("unclosed list", "unclosed inline table")):
                _blank_continuation(lines, culprit, "]" if words.startswith("unclosed list") else "}")
    return sorted(found)


def _blank_continuation(lines: list[str], opened: int, closing: str) -> None:
    """Blank the lines that continued an unclosed list or inline table, up to its closing bracket
    (a list stops at the next key; an inline table's lines hold keys of their own)."""
    for i in range(opened, min(opened + 50, len(lines))):
        text = lines[i].split("#", 1)[0]
        if _HEADER.match(text) or (closing == "]" and "=" in text and "]" not in text):
            return
        lines[i] = ""
        if closing in text:
            return


def _key_of(line: str) -> str:
    return line.split("=", 1)[0].strip() if "=" in line else line.strip().split(" ")[0]


def _section_start(lines: list[str], line: int) -> int:
    """The 1-based line of the [header] that `line` belongs to (0: the top of the file)."""
    for i in range(line - 1, 0, -1):
        if _HEADER.match(lines[i - 1]):
            return i
    return 0


def _open_quote(line: str) -> int | None:
    """Column (1-based) of a quote that the line does not close, outside comments."""
    quote, start, i = "", 0, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch == "#":
            break
        elif ch in "\"'":
            if line.startswith(ch * 3, i):
                return None  # a multi-line string: not a one-line mistake
            quote, start = ch, i
        i += 1
    return start + 1 if quote else None


def _unclosed_quote(lines: list[str]) -> tuple[int, int]:
    for n, text in enumerate(lines, 1):
        col = _open_quote(text)
        if col is not None:
            return n, col
    for n, text in enumerate(lines, 1):
        if '"""' in text or "'''" in text:
            return n, text.index('"""' if '"""' in text else "'''") + 1
    last = len(lines)
    return last, len(lines[-1]) + 1


def _explain(lines: list[str], phrase: str, line: int, column: int) -> tuple[int, int, str, int]:
    """(line, column, words, line to blank before parsing again)."""
    text = lines[line - 1] if 1 <= line <= len(lines) else ""
    if phrase == "Cannot overwrite a value":
        key = _key_of(text)
        if key and key in text:
            column = text.index(key) + 1  # at the key, not after its value
        start = _section_start(lines, line)
        for n in range(start + 1, line):
            if "=" in lines[n - 1] and _key_of(lines[n - 1]) == key:
                return line, column, f"duplicate key {key!r}: already set at line {n} in the same table", line
        return line, column, f"key {key!r} is set twice (or is already a table)", line
    if phrase.startswith("Cannot declare") and phrase.endswith("twice"):
        m = _HEADER.match(text)
        name = m.group(2) if m else text.strip()
        first = next(
            (n for n in range(1, line) if (h := _HEADER.match(lines[n - 1])) and h.group(2) == name), None
        )
        where = f" (first at line {first})" if first else ""
        return line, 1, f"table [{name}] is declared twice{where}: keep one section", line
    if phrase in ("Unterminated string", 'Expected "\'"') or phrase == "Illegal character '\\n'":
        col = _open_quote(text)
        if col is not None:
            return (
                line,
                col,
                f"unclosed string: the quote at column {col} has no closing quote on this line",
                line,
            )
        if '"""' in text or "'''" in text:
            return (
                line,
                column,
                f"unclosed multi-line string: the one opened at column {column} never ends",
                line,
            )
        return line, column, "unclosed string: a quote has no closing quote", line
    if phrase.startswith("Expected '=' after a key"):
        key = text.strip().split(" ")[0]
        return line, column, f"expected '=' after {key!r}: write it as {key} = value (text in quotes)", line
    if phrase == "Invalid value":
        value = text[column - 1 :].strip()
        if not value:
            opened = _opened_above(lines, line, "[", "]")
            if opened != line:
                return opened, 1, "unclosed list: this '[' has no matching ']'", opened
            return line, column, "a value is missing after '='", line
        return (
            line,
            column,
            f'invalid value {value!r}: text needs quotes ("..."), booleans are true or false, '
            "numbers are plain digits",
            line,
        )
    if phrase == "Unclosed array":
        opened = _opened_above(lines, line, "[", "]")
        return opened, 1, "unclosed list: this '[' has no matching ']'", opened
    if phrase == "Unclosed inline table" or (
        phrase.startswith("Invalid initial character for a key part") and "{" in text and "}" not in text
    ):
        return line, column, "unclosed inline table: '{' needs its '}' on the same line", line
    if phrase.startswith("Expected ']' at the end of a table declaration"):
        return line, column, "table header without its closing ']'", line
    if phrase.startswith("Duplicate inline table key"):
        key = phrase.rsplit(" ", 1)[-1]
        return line, column, f"duplicate key {key} in the inline table", line
    if phrase == "Expected newline or end of document after a statement":
        rest = text[column - 1 :].strip()
        return line, column, f"unexpected {rest!r} after the value: one key = value per line", line
    if phrase.startswith("Unescaped '\\'"):
        return (
            line,
            column,
            'a backslash in a "..." string starts an escape: write \\\\ or use single quotes',
            line,
        )
    if phrase == "Invalid statement":
        return line, column, "this line is neither key = value nor a [table] header", line
    return line, column, phrase, line


def _opened_above(lines: list[str], line: int, open_ch: str, close_ch: str) -> int:
    """The nearest line at or above `line` where `open_ch` outnumbers `close_ch`."""
    for n in range(min(line, len(lines)), 0, -1):
        text = lines[n - 1].split("#", 1)[0]
        if "=" in text and text.count(open_ch) > text.count(close_ch):
            return n
    return line
