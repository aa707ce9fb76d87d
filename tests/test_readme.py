"""The README's result sections are the committed result files' figures, rendered by tests/readme_sections.py."""

from __future__ import annotations

import re

from readme_sections import README, RENDERERS, render, sections

SECTIONS_WITH_RESULTS = ("## The main result: Table 1 on 48 speakers", "## What a run does",
                         "## What the demo run shows, claim by claim", "## The many-speaker demo corpus",
                         "## Fresh attackers versus the adversary head", "## The encoder as it ships")


def test_every_rendered_section_matches_the_files_it_cites():
    found = sections(README.read_text(encoding="utf-8"))
    assert set(found) == set(RENDERERS), "README sections and renderers differ: run python tests/readme_sections.py"
    for name, body in found.items():
        assert body == render(name), f"README section {name!r} drifted from its files: run python tests/readme_sections.py"


def test_result_sections_state_no_figure_outside_their_rendered_blocks():
    """In the sections that report committed results, every three-decimal figure sits in a rendered block."""
    text = README.read_text(encoding="utf-8")
    for heading in SECTIONS_WITH_RESULTS:
        start = text.index(heading)
        end = text.find("\n## ", start + 1)
        body = re.sub(r"<!-- rendered:([\w-]+) -->.*?<!-- /rendered:\1 -->", "", text[start:end], flags=re.S)
        stray = re.findall(r"(?<![\w.])0\.\d{3}(?!\d)", body)
        assert not stray, f"{heading}: figures outside rendered blocks: {stray[:5]}"
