"""Every preset (federation/presets.py) has its mark, static/idp/<preset>.svg, used by the sign-in
button when the provider has no logo of its own: a small hand-made SVG (shapes only: no text,
no embedded images, no scripts), square, and the preset's name kept in the provider's options so
that the page can find it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from idbroker.federation.presets import PRESETS, expand

STATIC = Path(__file__).resolve().parents[2] / "src" / "idbroker" / "web" / "static" / "idp"
SVG = "{http://www.w3.org/2000/svg}"
SHAPES = {"svg", "path", "rect", "circle", "ellipse", "polygon", "g"}


@pytest.mark.parametrize("name", [*sorted(PRESETS), "generic"])
def test_mark_is_a_small_square_svg_of_shapes(name: str) -> None:
    path = STATIC / f"{name}.svg"
    assert path.is_file(), f"no mark for {name}: {path}"
    assert path.stat().st_size < 2048
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg" and root.get("viewBox") == "0 0 24 24"
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert tags <= SHAPES, f"{name}.svg has {tags - SHAPES}"
    assert not any(k.startswith("on") or "href" in k for el in root.iter() for k in el.attrib)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_name_is_kept_in_the_options(name: str) -> None:
    kind, options = expand(name, {"client_id": "x"})
    assert kind == PRESETS[name]["kind"] and options["preset"] == name
    assert "preset" not in expand("oidc", {"issuer": "https://op.example"})[1]
