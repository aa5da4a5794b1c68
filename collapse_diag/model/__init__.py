"""Step 2 of the flow: the model protocol and the one encoder pass.

``protocol`` (the duck-typed contract and its up-front check), ``padding``
(its padding self-check), ``decoding`` (batched decoder calls shared by the
decoder diagnostics), ``encodings`` (the encoder pass -> :class:`Encodings`),
``wrap`` (a model's own methods mapped to the protocol).
"""
