"""The project's documents stay true to the code: every config key documented and exemplified,
with its environment variable, and every relative link in the README and docs/ pointing at a file
that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from binhub.ops.config import KNOWN_KEYS, env_name

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "configuration.md"
EXAMPLE = ROOT / "examples" / "binhub.toml"

# A reference row: | `section.key` | `BINHUB_SECTION_KEY` | ...
_ROW = re.compile(r"^\|\s*`([a-z_.]+)`\s*\|\s*`([A-Z0-9_]+)`\s*\|", re.M)
# A key in the example, set or commented out: "key = ..." or "#   key = ..."
_EXAMPLE_KEY = re.compile(r"^#?\s*([a-z_]+)\s*=")
_SECTION = re.compile(r"^\[([a-z_.]+)\]\s*$")
_ARRAY_SECTION = re.compile(r"^#?\s*\[\[([a-z_]+)\]\]\s*$")  # [[stream]]: its keys are stream[].KEY
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def documented_keys() -> dict[str, str]:
    rows = _ROW.findall(CONFIG_DOC.read_text())
    keys = dict(rows)
    assert len(keys) == len(rows), "a key is documented twice in docs/configuration.md"
    return keys


def test_every_config_key_is_documented_with_its_env_var() -> None:
    documented = documented_keys()
    assert sorted(set(KNOWN_KEYS) - set(documented)) == [], "keys binhub accepts but docs/configuration.md lacks"
    assert sorted(set(documented) - set(KNOWN_KEYS)) == [], "keys docs/configuration.md names but binhub refuses"
    wrong = {key: env for key, env in documented.items() if env != env_name(key)}
    assert not wrong, f"environment variable names in docs/configuration.md: {wrong}"


def example_keys() -> set[str]:
    """Dotted keys of examples/binhub.toml, whether set or shown commented out."""
    keys: set[str] = set()
    section = None
    for line in EXAMPLE.read_text().splitlines():
        line = line.strip()
        if match := _SECTION.match(line):
            section = match.group(1)
        elif match := _ARRAY_SECTION.match(line):
            section = match.group(1) + "[]"
        elif section is not None and (match := _EXAMPLE_KEY.match(line)):
            keys.add(f"{section}.{match.group(1)}")
    return keys


def test_the_example_config_shows_every_key() -> None:
    from binhub.ops.config import _APPLY_KEYS, _STREAM_KEYS

    keys = example_keys()
    stream_keys = {k for k in keys if k.startswith("stream[].")}
    assert stream_keys and {k.removeprefix("stream[].") for k in stream_keys} <= _STREAM_KEYS
    apply_keys = {k.removeprefix("apply[].") for k in keys if k.startswith("apply[].")}
    assert apply_keys == _APPLY_KEYS, "examples/binhub.toml shows every [[apply]] key, and only those"
    keys = {k for k in keys - stream_keys if not k.startswith("apply[].")}
    assert sorted(set(KNOWN_KEYS) - keys) == [], "keys missing from examples/binhub.toml"
    assert sorted(keys - set(KNOWN_KEYS)) == [], "examples/binhub.toml shows keys binhub refuses"


@pytest.mark.parametrize("doc", ["README.md", *sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))])
def test_relative_links_resolve(doc: str) -> None:
    path = ROOT / doc
    broken = []
    for target in _LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            broken.append(target)
    assert not broken, f"{doc} links to files that do not exist: {broken}"


def test_the_readme_points_inside_the_repository() -> None:
    text = (ROOT / "README.md").read_text()
    assert "../shared/DESIGN.md" not in text, "the README must not send readers outside the repository for the design"
    for doc in ("docs/architecture.md", "docs/configuration.md", "docs/operations.md"):
        assert f"({doc})" in text, f"the README does not link {doc}"
