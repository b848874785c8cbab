"""Property: whatever an accountant does to a mapping file, check reports it (never crashes),
and every error points inside the file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.mapping import check_mapping
from tests.mapping.helpers import MAPPINGS

ORIGINAL = (MAPPINGS / "csv.toml").read_text(encoding="utf-8")
LINES = ORIGINAL.splitlines(keepends=True)
WORDS = ['"', "'", "[", "]", "{", "}", "=", ",", ".", "[]", "\n", " ", "x", "1", "true", '"items[].amount"',
         '["upper"]', "[{ truncate = 2 }]", "{ map = 1 }", '"{"', "#"]  # fmt: skip


@st.composite
def edits(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "insert", "replace"]))
        line = lines[index]
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        else:
            pos = draw(st.integers(0, len(line)))
            word = draw(st.sampled_from(WORDS))
            end = pos + (draw(st.integers(0, 3)) if action == "replace" else 0)
            lines[index] = line[:pos] + word + line[end:]
        if not lines:
            lines = [""]
    return "".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_any_edit_is_checked_without_crashing(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "csv.toml"
        path.write_text(text, encoding="utf-8")
        errors = check_mapping(path)
    lines = text.splitlines() or [""]
    for error in errors:
        assert error.file == str(path)
        assert error.line is not None and 1 <= error.line <= len(lines) + 1, str(error)
        assert error.column is not None and error.column >= 1, str(error)
        assert str(error).startswith(f"{path}:{error.line}:{error.column}: ")
