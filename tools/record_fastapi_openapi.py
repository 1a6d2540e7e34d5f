"""Record what FastAPI answers at /openapi.json for our case apps, examples and docs pages.

    pip install fastapi python-multipart pytest  # in a separate virtualenv: not our dependency
    python tools/record_fastapi_openapi.py       # all: cases, examples and docs pages
    python tools/record_fastapi_openapi.py docs  # only the examples and docs pages

Each source is written for VelociPy; this script runs its FastAPI twin (the same
code with its imports pointed at FastAPI, `tools/fastapi_twin.py`) and stores
FastAPI's document: `fixtures/CASE.json` for tests/openapi/cases/ and examples/,
`fixtures/docs/PAGE.APP.json` for every app a docs page declares. A docs app FastAPI
cannot run (it uses a VelociPy-only API) is listed with the reason in
`fixtures/docs/not-in-fastapi.json`. The tests compare our `app.openapi()` with these
files; FastAPI itself never runs at test time.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

from fastapi_twin import VelociPyOnly, as_fastapi

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "openapi" / "cases"
#: The runnable examples are documented too: their FastAPI twins are recorded beside the cases.
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if "VelociPy(" in p.read_text())
FIXTURES = ROOT / "tests" / "openapi" / "fixtures"
DOCS = ROOT / "docs"
DOCS_FIXTURES = FIXTURES / "docs"
DECLARED = re.compile(r"(?m)^(\w+) = VelociPy\(")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: Apps FastAPI runs but whose document we refuse on purpose (docs/openapi.md says why).
REFUSED_BY_US = {
    "openapi.md:twice": (
        "VelociPy refuses a repeated operationId at startup; "
        "FastAPI writes the clash into the document"
    ),
}


def fastapi_source(path: Path) -> str:
    # The one VelociPy-only line the examples have: FastAPI apps have no WSGI entry point.
    return as_fastapi(re.sub(r"(?m)^wsgi = app\.wsgi$", "", path.read_text()))


def record(case: Path, not_in_fastapi: dict[str, str]) -> None:
    module = types.ModuleType(f"case_{case.stem}")
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    try:
        exec(compile(fastapi_source(case), str(case), "exec"), module.__dict__)
    except (VelociPyOnly, Exception) as error:  # noqa: BLE001 - an example may be VelociPy-only
        if case.parent.name != "examples":
            raise  # the case apps are written to be FastAPI apps too
        not_in_fastapi[f"examples/{case.name}:app"] = f"{type(error).__name__}: {error}"
        return
    write(FIXTURES / f"{case.stem}.json", module.app.openapi())


def write(out: Path, document: dict[str, Any]) -> None:
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{len(document.get('paths', {}))} paths -> {out.relative_to(ROOT)}")


def record_page(page: Path, not_in_fastapi: dict[str, str]) -> None:
    """Run a page's blocks in order as FastAPI code, as tests/test_docs.py runs ours.

    A block FastAPI cannot run leaves out every app it names: those apps use a
    VelociPy-only API, and are listed with the block's error instead of recorded.
    """
    from fastapi import FastAPI

    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module
    failed: list[tuple[str, str]] = []
    for index, source in enumerate(BLOCK.findall(page.read_text())):
        try:
            exec(
                compile(as_fastapi(source), f"{page.name} (block {index + 1})", "exec"),
                module.__dict__,
            )
        except (VelociPyOnly, Exception) as error:  # noqa: BLE001 - every failure is reported below
            reason = f"block {index + 1}: {type(error).__name__}: {error}"
            failed.append((source, reason))
    apps = {name for name, value in vars(module).items() if isinstance(value, FastAPI)}
    # An app whose own declaring block failed never came to exist on FastAPI's side.
    apps |= {name for source, _ in failed for name in DECLARED.findall(source)}
    for name in sorted(apps):
        key = f"{page.name}:{name}"
        # Only a failed block that declares something on the app at module level changes
        # its document; one that merely uses it (in a test function, say) does not.
        declares = re.compile(rf"(?m)^(@{name}\.|{name}\.\w+\(|{name} = )")
        reasons = [reason for source, reason in failed if declares.search(source)]
        if key in REFUSED_BY_US:
            not_in_fastapi[key] = REFUSED_BY_US[key]
        elif reasons:
            not_in_fastapi[key] = reasons[0]
        else:
            write(DOCS_FIXTURES / f"{page.stem}.{name}.json", getattr(module, name).openapi())
    del sys.modules[module.__name__]


def main() -> None:
    import fastapi

    FIXTURES.mkdir(exist_ok=True)
    names = set(sys.argv[1:])
    for case in sorted(CASES.glob("*.py")):
        if case.stem != "__init__" and (not names or case.stem in names):
            record(case, {})
    if not names or "docs" in names:
        # The examples and the docs pages together: each app is recorded or listed.
        not_in_fastapi: dict[str, str] = {}
        for example in EXAMPLES:
            record(example, not_in_fastapi)
        DOCS_FIXTURES.mkdir(exist_ok=True)
        for old in DOCS_FIXTURES.glob("*.json"):
            old.unlink()
        for page in sorted(DOCS.glob("*.md")):
            record_page(page, not_in_fastapi)
        write_reasons(not_in_fastapi)
    print(f"FastAPI {fastapi.__version__}")


def write_reasons(not_in_fastapi: dict[str, str]) -> None:
    out = DOCS_FIXTURES / "not-in-fastapi.json"
    out.write_text(json.dumps(not_in_fastapi, indent=2, sort_keys=True) + "\n")
    print(f"{len(not_in_fastapi)} apps FastAPI cannot run -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
