"""The input options of every command that loads models, declared once.

``analyze``, ``compare`` and ``track`` read checkpoints, so they take the same
options with the same help: ``--data``, ``--labels``, ``--factory``,
``--config``, ``--adapter``, ``--state-dict-prefix``, ``--trust-checkpoint``,
``--map`` (the method map), ``--out`` and ``--format``.
:func:`model_input_options` adds them and hands the command one
:class:`ModelInputs` instead of ten keyword arguments; only
what differs per command (the default folder, what it holds, the formats) is
passed in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from collapse_diag.io.adapters import ADAPTERS
from collapse_diag_cli.common import _formats_option

__all__ = ["INPUT_OPTIONS", "ModelInputs", "model_input_options"]

#: The options :func:`model_input_options` adds, as they appear on the command line.
INPUT_OPTIONS = ("--data", "--labels", "--factory", "--config", "--adapter",
                 "--state-dict-prefix", "--trust-checkpoint", "--map", "--out", "--format")


@dataclass(frozen=True)
class ModelInputs:
    """What the user said about where the models, inputs and documents are.

    Attributes:
        data: Evaluation inputs overriding the checkpoints' stored ``data``, or ``None``.
        labels: Known factors file, or ``None``.
        factory: ``"module:callable"`` building the model, or ``None``.
        config: JSON file of keyword arguments for the factory, or ``None``.
        adapter: Name of the adapter reading the checkpoints, or ``None`` (auto-detect).
        state_dict_prefix: Keep only the weights with this prefix, or ``None``.
        trust_checkpoint: Allow unpickling arbitrary objects.
        method_map: ``NAME=SPEC`` entries of the method map (empty: the model's own methods).
        out: The output folder.
        formats: The documents to write.
    """

    data: Path | None
    labels: Path | None
    factory: str | None
    config: Path | None
    adapter: str | None
    state_dict_prefix: str | None
    trust_checkpoint: bool
    method_map: tuple[str, ...]
    out: Path
    formats: tuple[str, ...]

    def load_options(self) -> dict[str, Any]:
        """The keyword arguments of ``load_checkpoint`` (and of ``compare`` / ``track``)."""
        return {"factory": self.factory, "config": self.config,
                "trust_checkpoint": self.trust_checkpoint, "adapter": self.adapter,
                "state_dict_prefix": self.state_dict_prefix}


def model_input_options(*, out_default: str, out_holds: str, formats: tuple[str, ...],
                        data_default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the input options to a click command; it receives them as ``inputs: ModelInputs``.

    Args:
        out_default: The default output folder.
        out_holds: What the folder receives, for ``--out``'s help.
        formats: The formats ``--format`` accepts (all by default).
        data_default: Where inputs come from without ``--data``, for its help.
    """
    file_path = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option("--data", "data", type=file_path, default=None,
                     help="Evaluation inputs for every model, overriding the checkpoints' "
                          "'data': .pt (Tensor or dict of Tensors), .npy/.npz, .txt (one "
                          "example per line) or .jsonl[:FIELD] (the text field, default "
                          "'text'); text needs the model's tokenize. Floating inputs are cast "
                          f"to the model's parameter dtype. Default: {data_default}."),
        click.option("--labels", "labels", type=file_path, default=None,
                     help="Known factors, one class per input: .pt/.npz (name -> array), "
                          ".npy, .csv/.tsv (header of names) or .jsonl (one object per "
                          "input); FILE:name1,name2 keeps those factors; text classes are "
                          "encoded. Default: the checkpoint's, kept with --data only when the "
                          "numbers of inputs match."),
        click.option("--factory", default=None,
                     help="'module:callable' that builds the model, for checkpoints holding "
                          "only a state dict (the current folder is importable). Overrides "
                          "the file's."),
        click.option("--config", "config", type=file_path, default=None,
                     help="JSON file of keyword arguments for the factory."),
        click.option("--adapter", type=click.Choice(sorted(ADAPTERS)), default=None,
                     help="How to read the checkpoints (docs/adapters.md) [default: "
                          "auto-detected: a pythae folder, a Lightning file, a TorchScript "
                          "archive, else native]."),
        click.option("--state-dict-prefix", default=None,
                     help="Keep only the weights named with this prefix, stripped of it (e.g. "
                          "'model.' for a LightningModule's self.model)."),
        click.option("--trust-checkpoint", is_flag=True,
                     help="Allow unpickling arbitrary Python objects (a fully pickled model). "
                          "Unpickling can run any code: only for files you trust."),
        click.option("--map", "method_map", multiple=True, metavar="NAME=[-]ATTR[:FORM]",
                     help="Map a protocol method to the model's own (repeatable), e.g. "
                          "encode=encode_stats:mu_std, log_likelihood=-recon_loss; forms "
                          "mu_logvar, mu_std, mu_log_std, mu_var, dist, dict; sum, mean; '-' "
                          "negates a loss (docs/adapters.md#method-map)."),
        click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
                     default=Path(out_default), show_default=True,
                     help=f"Folder for {out_holds}."),
        click.option("--format", "formats", default=",".join(formats), show_default=True,
                     callback=_formats_option(formats),
                     help=f"Which documents to write: any of {','.join(formats)}."),
    ]
    names = ("data", "labels", "factory", "config", "adapter", "state_dict_prefix",
             "trust_checkpoint", "method_map", "out", "formats")

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            inputs = ModelInputs(**{name: kwargs.pop(name) for name in names})
            return command(*args, inputs=inputs, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate
