"""Where each key and value of a TOML document is: `(line, column)` by path.

tomllib parses but forgets positions. This scanner walks text that tomllib has already
accepted and records, for every key path (e.g. `("tables", "invoices", "fields", 2, "from")`),
the position of the key and of its value, array elements included. It never computes values,
so it only has to know where strings, arrays and inline tables begin and end.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_WS = " \t"


@dataclass
class Locations:
    """Positions (1-based line and column) of keys and values by path."""

    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def key(self, path: Path) -> tuple[int, int] | None:
        """Where the key of `path` is written (or the nearest enclosing thing that is)."""
        return self._find(path, prefer_key=True)

    def value(self, path: Path) -> tuple[int, int] | None:
        """Where the value at `path` is written (or the nearest enclosing thing that is)."""
        return self._find(path, prefer_key=False)

    def _find(self, path: Path, *, prefer_key: bool) -> tuple[int, int] | None:
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if path in first:
                return first[path]
            if path in second:
                return second[path]
            if not path:
                return None
            path = path[:-1]


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.out = Locations()
        self.aot: dict[Path, int] = {}

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_ws(self, newlines: bool = False) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in _WS or (newlines and ch in "\r\n"):
                self.pos += 1
            elif ch == "#" and newlines:
                while self.pos < len(text) and text[self.pos] != "\n":
                    self.pos += 1
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    def string(self) -> str:
        """Read a quoted string starting at pos; return its (unescaped enough) content."""
        text = self.text
        for quote in ('"""', "'''"):
            if text.startswith(quote, self.pos):
                end = self.pos + 3
                while True:
                    end = text.find(quote, end)
                    if end < 0:
                        end = len(text)
                        break
                    if quote == '"""' and _escaped(text, end):
                        end += 1
                        continue
                    break
                while text.startswith(quote[0], end + 3):  # up to two quotes may close the string
                    end += 1
                content = text[self.pos + 3 : end]
                self.pos = end + 3
                return content
        quote = text[self.pos]
        end = self.pos + 1
        while end < len(text) and text[end] != quote:
            end += 2 if (quote == '"' and text[end] == "\\") else 1
        content = text[self.pos + 1 : end]
        self.pos = end + 1
        if quote == '"' and "\\" in content:
            try:
                return str(json.loads(f'"{content}"'))
            except ValueError:
                return content
        return content

    def key(self) -> list[tuple[str, int]]:
        """A dotted key: its parts with the offset where each begins."""
        parts = []
        while True:
            self.skip_ws()
            start = self.pos
            if self.peek() in "\"'":
                parts.append((self.string(), start))
            else:
                m = _BARE.match(self.text, self.pos)
                if not m:
                    return parts
                parts.append((m.group(), start))
                self.pos = m.end()
            self.skip_ws()
            if self.peek() != ".":
                return parts
            self.pos += 1

    def value(self, path: Path) -> None:
        self.out.values[path] = self.where(self.pos)
        ch = self.peek()
        if ch in "\"'":
            self.string()
        elif ch == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_ws(newlines=True)
                if self.peek() in ("]", ""):
                    self.pos += 1
                    return
                if self.peek() == ",":
                    self.pos += 1
                    continue
                self.value((*path, index))
                index += 1
        elif ch == "{":
            self.pos += 1
            while True:
                self.skip_ws()
                if self.peek() in ("}", ""):
                    self.pos += 1
                    return
                if self.peek() == ",":
                    self.pos += 1
                    continue
                self.keyval(path)
        else:
            m = re.compile(r"[^,\]}\s#]+").match(self.text, self.pos)
            self.pos = m.end() if m else self.pos + 1
            # a date-time may contain one space: `1979-05-27 07:32:00`
            m = re.compile(r" \d\d:\d\d[^,\]}\s#]*").match(self.text, self.pos)
            if m:
                self.pos = m.end()

    def keyval(self, base: Path) -> None:
        parts = self.key()
        path = base
        for name, start in parts:
            path = (*path, name)
            self.out.keys.setdefault(path, self.where(start))
        self.skip_ws()
        if self.peek() == "=":
            self.pos += 1
        self.skip_ws()
        self.value(path)

    def header_path(self, parts: list[tuple[str, int]]) -> Path:
        path: Path = ()
        for name, start in parts:
            path = (*path, name)
            # an implicit table (`tables` in `[tables.x]`) is where it is first named
            self.out.keys.setdefault(path, self.where(start))
            if path in self.aot:
                path = (*path, self.aot[path])
        return path

    def run(self) -> Locations:
        current: Path = ()
        while True:
            self.skip_ws(newlines=True)
            if self.pos >= len(self.text):
                return self.out
            start = self.pos
            if self.text.startswith("[[", self.pos):
                self.pos += 2
                parts = self.key()
                base = self.header_path(parts[:-1])
                array = (*base, parts[-1][0])
                self.aot[array] = self.aot.get(array, -1) + 1
                current = (*array, self.aot[array])
                self.out.keys.setdefault(array, self.where(start))
                self.out.keys[current] = self.where(start)
                self.skip_line()
            elif self.peek() == "[":
                self.pos += 1
                parts = self.key()
                current = self.header_path(parts)
                self.out.keys[current] = self.where(start)
                self.skip_line()
            else:
                before = self.pos
                self.keyval(current)
                if self.pos == before:  # not TOML we understand: never loop forever
                    self.skip_line()


def _escaped(text: str, end: int) -> bool:
    count = 0
    while end - count - 1 >= 0 and text[end - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def locate(text: str) -> Locations:
    """Positions of every key and value in `text` (a document tomllib accepts)."""
    return _Scanner(text).run()
