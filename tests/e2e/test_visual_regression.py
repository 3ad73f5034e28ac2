"""Visual regression: Chromium screenshots of the hosted pages (sign-in, with an error, sign-up,
forgotten password, device, error, consent, account, sign-in security, apps, sign-out) in English
light and dark and in Arabic (right to left), compared with the committed baselines under
tests/e2e/baselines/ within a tolerance (tests/e2e/visual.py), so an accidental layout change fails.

After an intended change of the look, update the baselines with `scripts/screenshots --baselines`
(same code path as this test) and commit them. On a failure, the actual screenshot and a diff image
(differing pixels in red) are written next to each other in the test's tmp directory and named in
the message."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from visual import BASELINES, MAX_RATIO, VARIANTS, compare, take

pytestmark = pytest.mark.browser
PIL = pytest.importorskip("PIL", reason="Pillow compares the screenshots (the test extra installs it)")

EXPECTED_PAGES = 11


def test_pages_look_like_the_committed_baselines(browser: Any, tmp_path: Path) -> None:
    baselines = sorted(BASELINES.glob("*.png"))
    assert len(baselines) == EXPECTED_PAGES * len(VARIANTS), \
        f"{len(baselines)} baselines in {BASELINES}: run scripts/screenshots --baselines"
    actual_dir = tmp_path / "actual"
    taken = take(browser, actual_dir)
    taken_names = sorted(p.name for p in taken)
    assert taken_names == [p.name for p in baselines], \
        f"pages differ from the baselines' ({set(taken_names) ^ {p.name for p in baselines}}): " \
        "run scripts/screenshots --baselines"
    failures = []
    for baseline in baselines:
        actual = actual_dir / baseline.name
        diff = tmp_path / f"{baseline.stem}.diff.png"
        found = compare(actual, baseline, diff)
        if found:
            shutil.copy(baseline, tmp_path / f"{baseline.stem}.expected.png")
            failures.append(f"{baseline.name}: {found.reason}\n  actual:   {actual}\n  expected: {baseline}"
                            + (f"\n  diff:     {diff}" if diff.exists() else ""))
    assert not failures, ("pages changed beyond the tolerance (if intended: scripts/screenshots --baselines)\n"
                          + "\n".join(failures))


def test_the_tolerance_catches_a_layout_shift_and_forgives_noise(tmp_path: Path) -> None:
    """A baseline compared with itself passes; the same picture with its content moved by 4 px
    (a margin that changed) fails and leaves a diff image; a few scattered changed pixels pass."""
    from PIL import Image, ImageChops, ImageDraw

    baseline = BASELINES / "sign-in.en-light.png"
    if not baseline.is_file():
        pytest.skip("no baselines: run scripts/screenshots --baselines")
    assert compare(baseline, baseline, tmp_path / "same.diff.png") is None

    image = Image.open(baseline).convert("RGB")
    shifted = tmp_path / "shifted.png"
    ImageChops.offset(image, 0, 4).save(shifted)
    diff = tmp_path / "shifted.diff.png"
    found = compare(shifted, baseline, diff)
    assert found is not None and found.ratio > MAX_RATIO and diff.is_file(), found

    noisy = image.copy()
    draw = ImageDraw.Draw(noisy)
    for i in range(200):
        draw.point(((i * 37) % image.width, (i * 91) % image.height), fill=(255, 0, 255))
    noisy_path = tmp_path / "noisy.png"
    noisy.save(noisy_path)
    assert compare(noisy_path, baseline, tmp_path / "noisy.diff.png") is None

    bigger = tmp_path / "bigger.png"
    Image.new("RGB", (image.width, image.height + 1)).save(bigger)
    assert compare(bigger, baseline, tmp_path / "bigger.diff.png").reason.startswith("size")
