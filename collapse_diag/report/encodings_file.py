"""``encodings.npz``: the encoder outputs of an analysis, kept beside report.json.

``collapse-diag analyze --save-encodings`` (library: ``analyze(..., save_encodings=path)``)
stores mu(x) and logvar(x) for every analysed input, in input order, so that
``collapse-diag compare`` can match the latent dimensions of models analysed on
the same inputs (identifiability across seeds). The file is a plain
``numpy.savez`` archive, read with ``allow_pickle=False``:

==================  ==============  ===========================================
key                 shape           meaning
==================  ==============  ===========================================
``mu``              ``(N, D)``      posterior means, float64
``logvar``          ``(N, D)``      posterior log-variances, float64
``prior_mu``        ``(N, D)``      learned prior means (only for such models)
``prior_logvar``    ``(N, D)``      learned prior log-variances (idem)
``num_tokens``      ``(N,)``        observation sizes (only with ``num_tokens``)
``data_sha256``     ``()``          the report's ``provenance.data_sha256``
==================  ==============  ===========================================
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from collapse_diag.exceptions import DataError, ReportWriteError
from collapse_diag.io.files import display_path, require_regular_file
from collapse_diag.model.encodings import Encodings
from collapse_diag.report.report import write_text_atomic

__all__ = ["ENCODINGS_FILE", "encodings_bytes", "load_encodings", "save_encodings"]

#: File name of the encodings beside report.json.
ENCODINGS_FILE = "encodings.npz"
_OPTIONAL = ("prior_mu", "prior_logvar", "num_tokens")


def encodings_bytes(encodings: Encodings, data_sha256: str = "") -> bytes:
    """The content of an encodings.npz holding ``encodings`` and the hash of their inputs."""
    arrays = {"mu": encodings.mu, "logvar": encodings.logvar,
              "data_sha256": np.array(str(data_sha256))}
    arrays.update({k: getattr(encodings, k) for k in _OPTIONAL
                   if getattr(encodings, k) is not None})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_encodings(path: str | Path, encodings: Encodings, data_sha256: str = "") -> Path:
    """Write ``encodings`` (and the hash of the inputs they encode) to ``path``, atomically.

    Raises:
        ReportWriteError: ``path`` is a folder or cannot be written.
    """
    try:
        return write_text_atomic(path, encodings_bytes(encodings, data_sha256))
    except OSError as err:
        raise ReportWriteError(
            f"cannot write the encodings to {display_path(path)!r}: "
            f"{err.strerror or err} (give the path of a file in a writable folder)."
        ) from err


def load_encodings(path: str | Path) -> tuple[Encodings, str]:
    """Read an encodings.npz: ``(Encodings, data_sha256)``.

    Raises:
        DataError: the file is missing, unreadable, or its arrays are malformed.
    """
    path = require_regular_file(path, "encodings", DataError,
                                fix=" Rerun `collapse-diag analyze` with --save-encodings.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read encodings {str(path)!r}: {err}") from err
    mu, logvar = arrays.get("mu"), arrays.get("logvar")
    if mu is None or logvar is None or mu.ndim != 2 or mu.shape != logvar.shape:
        raise DataError(f"{str(path)!r} must hold arrays 'mu' and 'logvar' of one shape "
                        "(N, D): rewrite it with `collapse-diag analyze --save-encodings`.")
    encodings = Encodings(mu=mu.astype(np.float64), logvar=logvar.astype(np.float64),
                          **{k: arrays[k].astype(np.float64) for k in _OPTIONAL if k in arrays})
    return encodings, str(arrays.get("data_sha256", ""))
