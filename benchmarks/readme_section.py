"""Write a generated table into the README between ``<!-- NAME -->`` and ``<!-- /NAME -->`` markers, and a
benchmark's JSON + markdown results next to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_section(name: str, body: str, readme: Path = README) -> None:
    """Replace what stands between the ``name`` markers with ``body`` (no-op when the README lacks them)."""
    text = readme.read_text()
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if start not in text:
        return
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1] if end in rest else rest
    readme.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def write_results(name: str, results: dict[str, Any], markdown: str, section: str, table: str,
                  results_dir: Path | None = None) -> None:
    """Write ``benchmarks/results/<name>.json`` and ``docs/<name>.md`` and replace the README's ``section`` with
    ``table``; with ``results_dir``, write both files there instead and leave the README alone (a trial run)."""
    root = README.parent
    out_dir = results_dir or root / "benchmarks" / "results"
    docs = results_dir or root / "docs"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (docs / f"{name}.md").write_text(markdown)
    if results_dir is None:
        replace_section(section, table)
    print(f"wrote {out_dir / f'{name}.json'} and {docs / f'{name}.md'}")
