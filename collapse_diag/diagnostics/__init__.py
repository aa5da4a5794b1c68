"""The diagnostics, one module each, each ending in its ``SPEC`` (diagnostics/spec.py).

Encoder-side (pure functions of :class:`~collapse_diag.model.encodings.Encodings`):
``kl``, ``activity``, ``information``, ``probes``. Decoder-side (batched decoder
passes): ``sensitivity``, ``identifiability``, ``likelihood``. ``verdict`` turns
the results into per-dimension statuses and an overall verdict. The ordered
list is :data:`collapse_diag.diagnostics.registry.SPECS` (imported from there,
not here, so that importing one diagnostic module does not import them all).
"""
