"""The README fits on a screen, shows the test command CI runs, and every page it links exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def command_lines(text):
    """The lines of the test command, from `python3 -m venv` to the last `snakemake --lint`."""
    start = text.index("python3 -m venv .venv && . .venv/bin/activate \\\n  && pip install -q")
    end = text.index(".test/definition_match.yaml", start) + len(".test/definition_match.yaml")
    return [line.strip().rstrip("\\").strip() for line in text[start:end].splitlines()]


def test_readme_is_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_readme_test_command_is_the_one_ci_runs():
    assert command_lines(README) == command_lines((REPO / ".ci" / "run").read_text())


def test_every_relative_link_in_readme_and_docs_resolves():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index():
    linked = README + (REPO / "docs" / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):
        if page.name != "README.md":
            assert page.name in linked, f"docs/{page.name} is linked from nowhere"
