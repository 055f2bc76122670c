"""docs/operations.md lists every server setting with its current default."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from sandbox_server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
FIX = "regenerate the table: python scripts/settings_doc.py"


def _settings_doc_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc",
                                                  REPO_ROOT / "scripts" / "settings_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_is_documented_with_its_default() -> None:
    doc = (REPO_ROOT / "docs" / "operations.md").read_text()
    rows = dict(re.findall(r"^\| `(SELFBOX_[A-Z0-9_]+)` \| ([^|]+) \|", doc, re.MULTILINE))
    settings_doc = _settings_doc_module()
    for name, field in Settings.model_fields.items():
        env = f"SELFBOX_{name.upper()}"
        assert env in rows, f"{env} is missing from docs/operations.md; {FIX}"
        assert rows[env].strip() == settings_doc.fmt_default(field), (
            f"{env}: the doc says {rows[env].strip()}, settings.py "
            f"{settings_doc.fmt_default(field)}; {FIX}")


def test_every_setting_has_a_description_and_a_unit_when_a_quantity() -> None:
    settings_doc = _settings_doc_module()
    for name, field in Settings.model_fields.items():
        assert field.description or name in settings_doc.FALLBACK, (
            f"SELFBOX_{name.upper()} has no description (settings.py or scripts/settings_doc.py)")
        if field.annotation in (int, float) and name not in ("port",):
            assert settings_doc.unit_of(name, str(field.annotation)) != "—", name
