"""The README's headline numbers are the recorded run's, not typed by hand: each is checked against the
record it cites."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "docs" / "results" / "xiao-depth" / "cpu-10000"


def _headline() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Headline results") :].split("\n## ", 1)[0]
    return " ".join(section.split())  # line breaks do not matter


def test_the_headline_quotes_the_10000_layer_record():
    headline = _headline()
    result = json.loads((RECORD / "result.json").read_text())
    runs = result["data"]["runs"]
    deep, gaussian = runs["10000"], runs["10000-gaussian"]
    assert f"**{100 * deep['final_test_accuracy']:.1f}%**" in headline
    assert f"**{100 * gaussian['final_test_accuracy']:.1f}%**" in headline
    assert f"training loss {deep['final_train_loss']:.2f}" in headline
    assert f"q* = {result['data']['q_star']:g}" in headline
    assert f"{deep['steps_done']} Adam steps" in headline
    assert f"{result['config']['channels']} channels" in headline
    assert f"all {result['config']['final_test_size']:,} test images" in headline
    assert gaussian["gradient_spread_init"]["zero_layers"] > deep["depth"] / 2  # "most of the stack"
    for link in re.findall(r"\]\((docs/[^)]+)\)", headline):
        assert (ROOT / link).exists(), link
