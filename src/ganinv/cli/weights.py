"""``ganinv weights``: list the pretrained weight files ganinv fetches once, and fetch them ahead of time."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ganinv.cli.common import console, human_size, print_table


def weights(
    download: Annotated[Optional[str], typer.Option(
        "--download", metavar="NAME|all",
        help="Fetch this registered file (or all of them) into its cache folder now; already cached files are "
        "kept.")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Never download: a file that is not cached is reported with where to put it by hand "
        "(the same as GANINV_OFFLINE=1, which every command honours).")] = False,
) -> None:
    """List the pretrained weight files (name, used by, cached or not, path, size); --download fetches them.

    A missing file is downloaded on first use, unless GANINV_OFFLINE=1 (or --offline) forbids it.

    GANINV_WEIGHTS_URL=BASE downloads from a mirror folder that holds the same file names.

    LPIPS's backbones live in the torch hub cache ($TORCH_HOME/hub/checkpoints).

    Files ganinv cannot download (the ArcFace weights for identity similarity) are listed when present: in ganinv's
    weights cache under their usual name, or named by their environment variable ($GANINV_ARCFACE).
    """
    from rich.table import Table

    from ganinv import weights as registry

    if offline:
        registry.set_offline(True)
    if download is not None:
        names = list(registry.REGISTRY) if download.strip().lower() == "all" else [download.strip()]
        entries = [registry.get(name) for name in names]  # unknown names fail before anything is fetched
        for entry in entries:
            was_cached = registry.is_cached(entry)
            path = registry.ensure(entry)
            console.print(f"{entry.name}: {'already cached at' if was_cached else 'saved to'} {path}")

    table = Table(title="pretrained weight files")
    table.add_column("name", no_wrap=True, style="bold")
    for column in ("used by", "cached", "path", "size"):
        table.add_column(column)
    for entry in registry.REGISTRY.values():
        path = entry.path
        cached = path.is_file()
        if cached:
            size = human_size(path.stat().st_size)
        else:
            size = f"≈{human_size(entry.size)}" if entry.size else "?"
        table.add_row(entry.name, entry.used_by, "[green]yes[/]" if cached else "no", str(path), size)
    absent = []
    for given in registry.GIVEN.values():  # user-given files: listed when present
        found = given.find()
        if found is not None and found[0].is_file():
            table.add_row(given.name, given.used_by, f"[green]given[/] ({found[1]})", str(found[0]),
                          human_size(found[0].stat().st_size))
        else:
            absent.append(given)
    print_table(table)
    for given in absent:
        console.print(f"[dim]{given.name} ({given.used_by}): not given; ganinv cannot download it ({given.source}): "
                      f"put {given.file_names[0]} in {registry.cache_dir('ganinv')} or set {given.env}=PATH[/]")
    if not download and not all(entry.path.is_file() for entry in registry.REGISTRY.values()):
        console.print("missing files are downloaded on first use (or now: ganinv weights --download NAME|all)"
                      + ("; downloads are off here (GANINV_OFFLINE / --offline)" if registry.is_offline() else ""))
