"""``ganinv`` entry point: registers the subcommands; user errors become one clear line and exit 1."""

from __future__ import annotations

import typer

from ganinv.cli import (convert, dataset, demo, directions, edit, evaluate, info, interpolate, invert, mix, models,
                        restore, sample, serve, train, video, weights)
from ganinv.cli.common import friendly_errors
from ganinv.cli.groups import expand_groups

app = typer.Typer(
    name="ganinv",
    help="GAN inversion: invert images into a generator's latent space, and use the codes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for name, command in {
    "models": models.models,
    "sample": sample.sample,
    "info": info.info,
    "convert": convert.convert,
    "demo": demo.demo,
    "train-gan": train.train_gan,
    "train-classifier": train.train_classifier,
    "train-encoder": train.train_encoder,
    "balance-classes": train.balance_classes,
    "eval": evaluate.evaluate,
    "invert": invert.invert,
    "invert-dataset": dataset.invert_dataset,
    "invert-video": video.invert_video,
    "restore": restore.restore,
    "directions": directions.directions,
    "edit": edit.edit,
    "edit-video": video.edit_video,
    "interpolate": interpolate.interpolate,
    "mix": mix.mix,
    "serve": serve.serve,
    "weights": weights.weights,
}.items():
    app.command(name)(friendly_errors(expand_groups(command)))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="ganinv")


if __name__ == "__main__":
    main()
