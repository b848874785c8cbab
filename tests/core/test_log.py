"""Logs never carry a secret."""

from __future__ import annotations

import io
import json

import structlog

from syncd import log


def test_json_logs_mask_secret_keys_and_registered_values() -> None:
    out = io.StringIO()
    log.configure(json=True, stream=out)
    log.register_secret("sk_live_abcdef123456")
    logger = structlog.get_logger("t")
    logger.info("api.retry", url="https://sk_live_abcdef123456:@api.invoiced.com/x", api_key="whatever", n=1)
    logger.info(
        "nested", headers={"Authorization": "Basic xyz", "accept": "json"}, items=["sk_live_abcdef123456"]
    )
    text = out.getvalue()
    assert "sk_live_abcdef123456" not in text and "Basic xyz" not in text and "whatever" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["api_key"] == "***" and first["n"] == 1 and "***" in first["url"]
    assert second["headers"] == {"Authorization": "***", "accept": "json"}
    assert second["items"] == ["***"]


def test_console_renderer_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    log.configure(stream=out)
    structlog.get_logger("t").info("hello", n=1)
    text = out.getvalue()
    assert "hello" in text and not text.lstrip().startswith("{")
