"""The README and docs/ stay short, true to the tree and to the CLI (no servers, no subprocess)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from harness.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_LIMIT = 10_000

# the repository's top-level entries a backticked path may start with
TOP_LEVEL = ("harness", "tests", "benchmarks", "scenarios", "apps", "compose", "results", "docs",
             "notebooks", ".ci")
_TOP = "|".join(re.escape(entry) for entry in TOP_LEVEL)
PATH_LIKE = re.compile(rf"^(?:{_TOP})(?:/[\w.\-]+)*/?$")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SUBCOMMAND = re.compile(r"(?:^|[\s/])harness ([a-z][\w-]*)")
FENCE = re.compile(r"^\s*(```|~~~)")

# the rule in .ci/run that takes the test command out of README.md
CI_AWK = "awk '/<!-- test-command/{found=1} found && /^```sh/{getline; print; exit}' README.md"
TEST_MARKER = "<!-- test-command: .ci/run runs the command in the next block -->"


def doc_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def split_fenced(text: str) -> tuple[str, list[str]]:
    """The prose (fenced blocks blanked out) and the lines inside fenced blocks."""
    prose: list[str] = []
    fenced: list[str] = []
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            prose.append("")
        elif inside:
            fenced.append(line)
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), fenced


def code_spans(text: str) -> list[str]:
    """Inline code spans outside fenced blocks, their whitespace runs made single spaces."""
    prose, _ = split_fenced(text)
    return [re.sub(r"\s+", " ", match.group(2)).strip() for match in INLINE_CODE.finditer(prose)]


def where(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_readme_is_short() -> None:
    size = len(README.read_text(encoding="utf-8"))
    assert size < README_LIMIT, (
        f"README.md has {size:,} characters: expected under {README_LIMIT:,} "
        "(move detail into docs/)"
    )


def test_docs_folder_has_pages() -> None:
    assert [p for p in doc_files() if p.parent.name == "docs"], "docs/ holds no .md page"


def test_backticked_paths_exist() -> None:
    missing: list[str] = []
    for doc in doc_files():
        for span in code_spans(doc.read_text(encoding="utf-8")):
            if " " in span or "/" not in span or not PATH_LIKE.match(span):
                continue
            if not (REPO / span.rstrip("/")).exists():
                missing.append(f"{where(doc)}: `{span}`")
    assert not missing, "backticked paths that do not exist:\n" + "\n".join(missing)


def test_relative_links_resolve() -> None:
    broken: list[str] = []
    for doc in doc_files():
        prose, _ = split_fenced(doc.read_text(encoding="utf-8"))
        for match in LINK.finditer(prose):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.\-]*:", target, re.IGNORECASE) or target.startswith("#"):
                continue  # http(s)://, mailto: and anchors within the page
            path = target.split("#", 1)[0]
            if not (doc.parent / path).exists():
                broken.append(f"{where(doc)}: ({target})")
    assert not broken, "relative links that resolve to nothing:\n" + "\n".join(broken)


def subcommands() -> set[str]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("harness.cli.build_parser() has no subcommands")


def test_subcommands_parsed_from_the_cli() -> None:
    assert {"run", "compare", "report"} <= subcommands()


def test_named_subcommands_exist() -> None:
    known = subcommands()
    unknown: list[str] = []
    for doc in doc_files():
        text = doc.read_text(encoding="utf-8")
        _, fenced = split_fenced(text)
        for snippet in [*code_spans(text), *fenced]:
            for name in SUBCOMMAND.findall(snippet):
                if name not in known:
                    unknown.append(f"{where(doc)}: harness {name} (in `{snippet}`)")
    assert not unknown, (f"not a harness subcommand (known: {', '.join(sorted(known))}):\n"
                         + "\n".join(unknown))


def ci_test_command(text: str) -> str | None:
    """What .ci/run's awk rule prints: from the marker line on, the line after the first
    line that starts with ```sh (awk's getline at the end of the file leaves that line)."""
    lines = text.splitlines()
    found = False
    for number, line in enumerate(lines):
        if "<!-- test-command" in line:
            found = True
        if found and line.startswith("```sh"):
            return lines[number + 1] if number + 1 < len(lines) else line
    return None


def test_ci_still_extracts_the_way_this_test_does() -> None:
    assert CI_AWK in (REPO / ".ci" / "run").read_text(encoding="utf-8"), (
        ".ci/run no longer extracts the test command with the rule ci_test_command mirrors: "
        "update both together"
    )


def test_readme_gives_the_test_command() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert TEST_MARKER in lines, f"README.md lost the line {TEST_MARKER!r}"
    after = lines[lines.index(TEST_MARKER) + 1]
    assert after == "```sh", f"the line after the marker is {after!r}: expected ```sh"
    command = ci_test_command("\n".join(lines))
    assert command is not None, "no test command found in README.md (.ci/run would fail)"
    assert command.startswith("python3 -m venv .venv"), command
    assert ".venv/bin/pytest" in command, command


def test_ci_test_command_mirrors_awk() -> None:
    text = "intro\n```sh\nnot this\n```\n<!-- test-command -->\ntext\n```sh\nthis one\n```\n"
    assert ci_test_command(text) == "this one"
    assert ci_test_command("```sh\nno marker\n```\n") is None
    assert ci_test_command("<!-- test-command -->\n```sh") == "```sh"
