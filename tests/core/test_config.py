"""Configuration: typed, env-overridable, errors name file and key, the key never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_settings
from syncd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_values_env_overrides_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        """
[invoiced]
base_url = "http://127.0.0.1:9"
api_key = "from-file-key"
[store]
url = "sqlite:///state/syncd.db"
[streams.invoices]
metadata = { region = "emea" }
filter = { status = "paid" }
[connectors.csv]
enabled = true
directory = "exports"
""",
    )
    monkeypatch.setenv("SYNCD_INVOICED__API_KEY", "env-key-1234")
    monkeypatch.setenv("SYNCD_STREAMS__CUSTOMERS__ENABLED", "false")
    settings = load_settings(path)
    assert settings.invoiced.api_key.get_secret_value() == "env-key-1234"
    assert settings.invoiced.base_url == "http://127.0.0.1:9"
    assert list(settings.streams.enabled()) == ["invoices", "transactions"]
    assert settings.streams.invoices.metadata == {"region": "emea"}
    assert settings.store_url() == f"sqlite:///{tmp_path / 'state/syncd.db'}"
    assert settings.resolve("exports") == tmp_path / "exports"
    assert "env-key-1234" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("[invoiced]\nper_page = 500\n", "invoiced.per_page", "less than or equal to 100"),
        ("[invoiced]\nbase_urll = 'x'\n", "invoiced.base_urll", "Extra inputs"),
        ("[streams.invoices]\nenabled = 'perhaps'\n", "streams.invoices.enabled", "boolean"),
        ("[streams.orders]\nenabled = true\n", "streams.orders", "Extra inputs"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == key
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[invoiced]\napi_key = \n")
    with pytest.raises(ConfigError, match=r"syncd.toml: not valid TOML: .*line 2"):
        load_settings(path)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml")


def test_secret_never_in_validation_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "[invoiced]\napi_key = 'sk_live_supersecret'\ntimeout = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "supersecret" not in str(info.value)


def test_config_example_is_valid_and_documents_every_connector() -> None:
    """The documented example must load, and every connector section in it must validate."""
    from syncd import registry

    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "config.example.toml")
    specs = registry.configured(settings, only_enabled=False)
    assert {spec.name for spec in specs} == set(registry.installed())
    assert all(spec.mapping_path.exists() for spec in specs)


def test_a_stream_section_keeps_the_default_windows(tmp_path: Path) -> None:
    """Naming a stream in the file must not silently turn its parallel first pass off."""
    settings = load_settings(write(tmp_path, "[streams.invoices]\nenabled = true\n"))
    assert settings.streams.invoices.windows == settings.streams.transactions.windows == 4
