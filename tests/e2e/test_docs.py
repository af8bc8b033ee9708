"""The docs as tests: what README.md and docs/*.md tell a reader to run runs, and what they name exists.

* **Marked blocks run.** A fenced block whose info string is ``sh test`` (GitHub still highlights
  it as ``sh``) is run line by line, in order, by `test_marked_block_runs`, in a fresh temporary
  directory holding a small seeded store (``ledger demo --seed 7 --orders 40``), with
  LEDGER_DATA_DIR, LEDGER_DATABASE_URL (SQLite there) and a fixed LEDGER_CIPHER_KEY set, ``ledger``
  on PATH running ``python -m shell.cli`` of this checkout, and ``docs/`` linked in (commands name
  ``docs/reports/...`` from the repository root). Every line must exit 0. Words after ``test``:

  - ``fresh``: start from an empty store instead (a block that seeds its own with ``ledger demo``);
  - ``continued``: first run the file's previous marked block in the same directory (a block that
    uses a file an earlier one wrote);
  - ``postgresql``: the block needs the PostgreSQL server (skipped without it, failed in CI).

  A comment line ``# expect: TEXT`` below a command says its output (stdout and stderr) holds TEXT.
  Lines ending in ``\\`` go on on the next line; blank and comment lines are skipped.
* **Named paths exist.** Every repository path a doc names, in backticks, in a link or in a shell
  or plain block (``src/...``, ``tests/...``, ``docs/...``, ``scripts/...``, ``.ci/run``; a bare
  ``name.py`` somewhere in the repository; a glob matches something), every link's ``#anchor``,
  and every module or attribute named in backticks or in a plain block (``shell.composition.compose``,
  ``shell.worker:worker_app``) exists."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_CIPHER_KEY

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = "test"
ATTRIBUTES = frozenset({"fresh", "continued", "postgresql"})
EXPECT = "# expect:"
SEED_ORDERS = 40  # the seeded store: ~900 events, a second to make
LINE_TIMEOUT_S = 120

REPO_ROOTS = ("src", "tests", "docs", "scripts", ".ci")  # a path starting here is relative to the repository root
PACKAGES = tuple(sorted(p.name for p in (ROOT / "src").iterdir() if (p / "__init__.py").exists()))
TEST_FOLDERS = tuple(sorted(p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").exists()))
PATH_BLOCK_LANGUAGES = frozenset({"", "sh", "bash", "console", "text"})  # blocks whose words are checked as paths
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
BACKTICKS = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\]]|\n)*?\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
DOTTED = re.compile(rf"^(?:{'|'.join(PACKAGES)})\.[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?$")
EVENT_TYPE = re.compile(r"^ledger\.[A-Z<]")  # `ledger.Order.Placed`: a CloudEvents type (docs/kafka.md), not a module


def module_like(name: str) -> bool:
    """`ledger.config.Settings` names a module's attribute; `ledger.Order.Placed` (an event type) and
    `ledger.py` (a file) do not."""
    return bool(DOTTED.match(name)) and not EVENT_TYPE.match(name) and not name.endswith(".py")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    language: str
    words: tuple[str, ...]  # of the info string after the language
    body: tuple[tuple[int, str], ...]  # (line number, text) of each line inside the fences

    @property
    def marked(self) -> bool:
        return bool(self.words) and self.words[0] == MARK

    @property
    def attributes(self) -> frozenset[str]:
        return frozenset(self.words[1:])

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    expects: tuple[str, ...]


@dataclass(frozen=True)
class Doc:
    path: Path
    blocks: tuple[Block, ...]
    prose: str  # the text outside fenced blocks, with each block's lines left empty (line numbers hold)


def parse(path: Path) -> Doc:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    prose = list(lines)
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        info = opening["info"].split()
        end = i + 1
        while end < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        body = tuple((n + 1, lines[n][indent:] if not lines[n][:indent].strip() else lines[n].lstrip())
                     for n in range(i + 1, end))
        blocks.append(Block(path, i + 1, info[0] if info else "", tuple(info[1:]), body))
        for n in range(i, min(end + 1, len(lines))):
            prose[n] = ""
        i = end + 1
    return Doc(path, tuple(blocks), "\n".join(prose))


def commands(block: Block) -> list[Command]:
    """The block's commands in order: continuation lines joined, `# expect:` lines attached."""
    found: list[Command] = []
    pending: tuple[int, str] | None = None
    for number, text in block.body:
        if pending is not None:
            start, head = pending
            text, number = head + " " + text.strip(), start
            pending = None
        stripped = text.strip()
        if stripped.endswith("\\"):
            pending = (number, stripped[:-1].rstrip())
        elif stripped.startswith(EXPECT):
            assert found, f"{block.doc.relative_to(ROOT)}:{number}: `{EXPECT}` with no command above it"
            last = found[-1]
            found[-1] = Command(last.line, last.text, (*last.expects, stripped[len(EXPECT):].strip()))
        elif stripped and not stripped.startswith("#"):
            found.append(Command(number, stripped, ()))
    assert pending is None, f"{block.doc.relative_to(ROOT)}:{pending[0]}: the block ends inside a continued line"
    return found


PARSED = [parse(doc) for doc in DOCS]
MARKED = [block for doc in PARSED for block in doc.blocks if block.marked]


def previous_marked(block: Block) -> Block:
    earlier = [b for b in MARKED if b.doc == block.doc and b.line < block.line]
    assert earlier, f"{block.where}: `continued`, but no marked block comes before it in the file"
    return earlier[-1]


def chain(block: Block) -> list[Block]:
    """The blocks to run for `block`, first to last: those it continues, then itself."""
    return [*chain(previous_marked(block)), block] if "continued" in block.attributes else [block]


# ---------------------------------------------------------------------------------------------
# Running the marked blocks


def doc_env(workdir: Path, bin_dir: Path) -> dict[str, str]:
    """The environment of a doc's commands: no LEDGER_* of the caller's, the store in `workdir`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}
    env.update(
        LEDGER_DATA_DIR=str(workdir),
        LEDGER_DATABASE_URL=f"sqlite:///{workdir / 'ledger.sqlite'}",
        LEDGER_CIPHER_KEY=TEST_CIPHER_KEY,
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT / "src"),
        COLUMNS="200",  # rich wraps its tables at the terminal's width: keep what `# expect:` looks for on one line
    )
    return env


def ledger_shim(bin_dir: Path) -> Path:
    """`ledger` on PATH: this interpreter running this checkout's CLI."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "ledger"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m shell.cli "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def run(command: Command, block: Block, workdir: Path, env: dict[str, str]) -> None:
    where = f"{block.doc.relative_to(ROOT)}:{command.line}"
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command.text], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=LINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where}: `{command.text}` ran longer than {LINE_TIMEOUT_S} s")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{where}: `{command.text}` exited {done.returncode}:\n{output}"
    for text in command.expects:
        assert text in output, f"{where}: `{command.text}` did not print {text!r}:\n{output}"


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the small demo store every marked block starts from (unless `fresh`)."""
    store = tmp_path_factory.mktemp("doc-store")
    env = doc_env(store, ledger_shim(tmp_path_factory.mktemp("doc-bin")))
    done = subprocess.run(["ledger", "demo", "--seed", "7", "--orders", str(SEED_ORDERS)], cwd=store, env=env,
                          capture_output=True, text=True, timeout=LINE_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    return store


@pytest.mark.parametrize("block", MARKED, ids=[block.where for block in MARKED])
def test_marked_block_runs(block: Block, seeded_store: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = chain(block)
    if any("postgresql" in b.attributes for b in blocks):
        request.getfixturevalue("pg_server")
    workdir = tmp_path / "work"
    if "fresh" in blocks[0].attributes:
        workdir.mkdir()
    else:
        shutil.copytree(seeded_store, workdir)
    (workdir / "docs").symlink_to(ROOT / "docs", target_is_directory=True)
    env = doc_env(workdir, ledger_shim(tmp_path / "bin"))
    for each in blocks:
        for command in commands(each):
            run(command, each, workdir, env)


def test_the_docs_mark_blocks_to_run() -> None:
    """The marker is in use, spelt right, and each marked block has something to run."""
    assert len(MARKED) >= 5, f"only {len(MARKED)} blocks are marked `{MARK}`"
    for block in MARKED:
        unknown = block.attributes - ATTRIBUTES
        assert not unknown, f"{block.where}: unknown {sorted(unknown)} after `{MARK}` (known: {sorted(ATTRIBUTES)})"
        assert commands(block), f"{block.where}: a marked block with no command"
        chain(block)


def test_commands_parse_continuations_and_expectations() -> None:
    block = Block(ROOT / "README.md", 1, "sh", (MARK,), (
        (2, "# a comment"), (3, "ledger audit verify \\"), (4, "    --from-checkpoint c.json   # why"),
        (5, "# expect: verification passed"), (6, ""), (7, "ledger reconcile")))
    assert commands(block) == [
        Command(3, "ledger audit verify --from-checkpoint c.json   # why", ("verification passed",)),
        Command(7, "ledger reconcile", ()),
    ]


def test_a_failing_line_names_its_file_and_line(tmp_path: Path) -> None:
    block = Block(ROOT / "docs" / "audit.md", 1, "sh", (MARK,), ())
    env = doc_env(tmp_path, ledger_shim(tmp_path / "bin"))
    run(Command(7, "echo verification passed", ("verification passed",)), block, tmp_path, env)
    with pytest.raises(AssertionError, match=r"docs/audit.md:8: `exit 3` exited 3"):
        run(Command(8, "exit 3", ()), block, tmp_path, env)
    with pytest.raises(AssertionError, match=r"docs/audit.md:9: `echo FAILED` did not print 'passed'"):
        run(Command(9, "echo FAILED", ("passed",)), block, tmp_path, env)


# ---------------------------------------------------------------------------------------------
# What the docs name


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def words(text: str) -> Iterator[str]:
    """Each whitespace-separated word, stripped of the punctuation prose and shell put around a path."""
    for word in text.split():
        word = re.sub(r"^[\"'(\[{]+|[\"')\]},;:.]+$", "", word)
        if word:
            yield word


def repository_path(word: str) -> Path | None:
    """The path in the repository a word names (may be a glob), or None if it names none of ours."""
    word = re.sub(r"^\./", "", word)
    word = re.sub(r"(\.py):[\w.]+$", r"\1", word)  # `docs/reports/x.py:Report`
    if "=" in word or "://" in word or word.startswith(("/", "$", "-")):
        return None
    first = word.split("/")[0]
    if "/" in word and first in REPO_ROOTS:
        return Path(word)
    if "/" in word and word.endswith((".py", "/")):
        if first in PACKAGES:
            return Path("src", word)
        if first in TEST_FOLDERS:
            return Path("tests", word)
    if "/" not in word and word.endswith(".py") and re.fullmatch(r"[\w*.-]+", word):
        return Path("**", word)
    return None


def exists(path: Path) -> bool:
    """Whether the path (a glob, or `**/name` for a bare file name: in any folder of ours) is there."""
    pattern = str(path).rstrip("/")
    if pattern.startswith("**/"):  # not ROOT.glob("**/..."): a checkout may hold a .venv
        return any(any((ROOT / root).glob(pattern)) for root in REPO_ROOTS)
    if any(ch in pattern for ch in "*?["):
        return any(ROOT.glob(pattern))
    return (ROOT / pattern).exists()


@dataclass(frozen=True)
class Named:
    where: str
    name: str


def named_paths(doc: Doc) -> Iterator[tuple[Named, Path]]:
    for span in BACKTICKS.finditer(doc.prose):
        for word in words(span[2]):
            path = repository_path(word)
            if path is not None:
                yield Named(f"{doc.path.relative_to(ROOT)}:{line_of(doc.prose, span.start())}", word), path
    for block in doc.blocks:
        if block.language in PATH_BLOCK_LANGUAGES:
            for number, text in block.body:
                for word in words(text):
                    path = repository_path(word)
                    if path is not None and "/" in word:  # a bare name in a block is rarely a file of ours
                        yield Named(f"{doc.path.relative_to(ROOT)}:{number}", word), path


def links(doc: Doc) -> Iterator[tuple[Named, str]]:
    for link in LINK.finditer(doc.prose):
        target = link[1]
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # not http:, mailto:, ...
            yield Named(f"{doc.path.relative_to(ROOT)}:{line_of(doc.prose, link.start())}", target), target


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in parse(path).prose.splitlines():
        heading = HEADING.match(line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def named_modules(doc: Doc) -> Iterator[Named]:
    """Modules and attributes of ours named in backticks, or in a plain block (the diagrams)."""
    texts = [(span.start(), span[2].strip()) for span in BACKTICKS.finditer(doc.prose)]
    for start, text in texts:
        name = re.sub(r"\(.*\)$", "", text)  # `compose(settings)`
        if module_like(name):
            yield Named(f"{doc.path.relative_to(ROOT)}:{line_of(doc.prose, start)}", name)
    for block in doc.blocks:
        if block.language == "":
            for number, text in block.body:
                for word in words(text):
                    name = re.sub(r"\(.*$", "", word)
                    if module_like(name):
                        yield Named(f"{doc.path.relative_to(ROOT)}:{number}", name)


def resolve(name: str) -> str | None:
    """None if `name` (`package.module.attr` or `package.module:attr`) exists, else why not."""
    module_part, _, attr_part = name.partition(":")
    parts = module_part.split(".")
    for size in range(len(parts), 0, -1):
        module = ".".join(parts[:size])
        try:
            obj: object = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name is not None and module.startswith(error.name):
                continue
            return f"importing {module} failed: {error}"
        rest = parts[size:] + (attr_part.split(".") if attr_part else [])
        for attribute in rest:
            if not hasattr(obj, attribute):
                return f"{'.'.join(parts[:size])} has no {'.'.join(rest)}"
            obj = getattr(obj, attribute)
        return None
    return f"no module {parts[0]}"


def test_every_named_repository_path_exists() -> None:
    missing = [f"{named.where}: {named.name}" for doc in PARSED for named, path in named_paths(doc) if not exists(path)]
    assert missing == []


def test_every_link_leads_somewhere() -> None:
    broken = []
    for doc in PARSED:
        for named, target in links(doc):
            file_part, _, anchor = target.partition("#")
            path = (doc.path.parent / file_part).resolve() if file_part else doc.path
            if not path.exists():
                broken.append(f"{named.where}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{named.where}: {target} (no heading with that anchor)")
    assert broken == []


def test_every_named_module_exists() -> None:
    wrong = [f"{named.where}: {named.name}: {why}" for doc in PARSED for named in named_modules(doc)
             if (why := resolve(named.name)) is not None]
    assert wrong == []


def test_the_path_checks_catch_a_stale_name() -> None:
    """The checks themselves: what the reorganisation left stale is named, what is there is not."""
    assert not exists(Path("tests", "test_ui_browser.py"))
    assert repository_path("tests/test_ui_*.py") == Path("tests/test_ui_*.py")
    assert not exists(Path("tests/test_ui_*.py"))
    assert exists(repository_path("tests/e2e/test_ui_*.py") or Path("?"))
    assert repository_path("queries.py") == Path("**", "queries.py") and not exists(Path("**", "queries.py"))
    assert repository_path("shell/bench/replay.py") == Path("src/shell/bench/replay.py")
    assert repository_path("docs/reports/x.py:Report") == Path("docs/reports/x.py")
    assert [repository_path(w) for w in ("/ui/proofs/<position>.json", "DATA_DIR/cipher.key", "sqlite:///data/x",
                                         "ledger/audit/v1", "../shared/vectors/rfc9162/", "cohorts.csv")] == [None] * 6
    assert resolve("shell.composition.compose") is None and resolve("shell.worker:worker_app") is None
    assert resolve("ledger.bootstrap") is not None and resolve("projections.engine.read_side.Nothing") is not None
    architecture = anchors(ROOT / "docs" / "architecture.md")
    assert "event-encoding-srcledgerencodingtranscodingpy-srcledgerencodingcipherpy" in architecture
