"""The diagnostics, one module each.

Encoder-side (pure functions of :class:`~collapse_diag.encodings.Encodings`):
``kl``, ``activity``, ``information``, ``probes``. Decoder-side (batched decoder
passes): ``sensitivity``, ``identifiability``. ``verdict`` turns the results
into per-dimension statuses and an overall verdict.
"""
