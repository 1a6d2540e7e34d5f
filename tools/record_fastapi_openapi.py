"""Record what FastAPI answers at /openapi.json for each case app in tests/openapi/cases/.

    pip install fastapi python-multipart     # in a separate virtualenv: not our dependency
    python tools/record_fastapi_openapi.py   # writes tests/openapi/fixtures/CASE.json

Each case is written for VelociPy; this script runs the same source with
`from velocipy import` read as `from fastapi import` (and `velocipy.security`
as `fastapi.security`), and stores FastAPI's document. The tests compare our
`app.openapi()` with these files; FastAPI itself never runs at test time.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "openapi" / "cases"
#: The runnable examples are documented too: their FastAPI twins are recorded beside the cases.
EXAMPLES = [ROOT / "examples" / "background_tasks.py", ROOT / "examples" / "todo_service.py"]
FIXTURES = ROOT / "tests" / "openapi" / "fixtures"

#: Our module → FastAPI's, for the import lines of a case.
IMPORTS = {
    "from velocipy.security import": "from fastapi.security import",
    "from velocipy.responses import": "from fastapi.responses import",
    "from velocipy import": "from fastapi import",
}


def as_fastapi(source: str) -> str:
    for ours, theirs in IMPORTS.items():
        source = source.replace(ours, theirs)
    # The one VelociPy-only line the examples have: FastAPI apps have no WSGI entry point.
    source = re.sub(r"(?m)^wsgi = app\.wsgi$", "", source)
    return source.replace("VelociPy", "FastAPI")


def record(case: Path) -> None:
    module = types.ModuleType(f"case_{case.stem}")
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    exec(compile(as_fastapi(case.read_text()), str(case), "exec"), module.__dict__)
    document = module.app.openapi()
    out = FIXTURES / f"{case.stem}.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{case.stem}: {len(document.get('paths', {}))} paths -> {out.relative_to(ROOT)}")


def main() -> None:
    import fastapi

    FIXTURES.mkdir(exist_ok=True)
    names = set(sys.argv[1:])
    sources = [*sorted(CASES.glob("*.py")), *EXAMPLES]
    for case in sources:
        if case.stem != "__init__" and (not names or case.stem in names):
            record(case)
    print(f"FastAPI {fastapi.__version__}")


if __name__ == "__main__":
    main()
