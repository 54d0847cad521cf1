"""``dino data shard SRC DEST``: write a data set as WebDataset-style tar shards.

``SRC`` is what ``data.root`` would be for ``--dataset`` (an image folder, or the directory of
Fashion-MNIST's IDX files); ``DEST`` a directory or URL (``s3://bucket/prefix``, AWS variables
as in :mod:`dino_core.storage`). Each split goes to ``DEST/<split>``; train from it with
``data.dataset: shards`` and ``data.root: DEST``. Mounted on the ``dino`` app by the CLI.
"""

from __future__ import annotations

from typing import cast, get_args

import typer

from dino_core.config import DatasetName
from dino_core.data import DataNotFoundError
from dino_core.data.shard_writer import DEFAULT_SHARD_SIZE, shard_source

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Prepare data sets.")
SOURCES = [d for d in get_args(DatasetName) if d != "shards"]


@app.callback()
def data_group() -> None:
    """Prepare data sets (a group even with one command: ``data shard``)."""


@app.command("shard")
def shard_command(
    src: str = typer.Argument(..., help="data.root of the source: an image folder, ..."),
    dest: str = typer.Argument(..., help="output directory or URL (s3://bucket/prefix)"),
    dataset: str = typer.Option("image_folder", "--dataset", help=" | ".join(SOURCES)),
    split: list[str] = typer.Option([], "--split", help="split to write (repeatable)"),
    shard_size: int = typer.Option(DEFAULT_SHARD_SIZE, "--shard-size", min=1),
) -> None:
    """Write SRC's splits as shards under DEST/<split> (index.json last)."""
    if dataset not in SOURCES:
        typer.secho(f"--dataset {dataset!r}: choose one of {', '.join(SOURCES)}", err=True)
        raise typer.Exit(2)
    try:
        written = shard_source(src, dest, cast(DatasetName, dataset), split or None, shard_size)
    except (DataNotFoundError, ValueError, OSError) as err:
        typer.secho(str(err), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    for name, index in written.items():
        typer.echo(
            f"{dest.rstrip('/')}/{name}: {len(index.labels)} images in {len(index.shards)} "
            f"shards, {len(index.classes)} classes"
        )
