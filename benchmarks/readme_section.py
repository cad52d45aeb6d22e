"""Write a generated table into the README between ``<!-- NAME -->`` and ``<!-- /NAME -->`` markers."""

from __future__ import annotations

from pathlib import Path

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
