"""What requests and answers look like on the wire, one module per convention:

- :mod:`~zoo.serve.protocols.tfserving`: TF Serving's JSON (``{"instances": [...]}`` in,
  ``{"predictions": [...]}`` out), each prediction what ``zoo predict --json`` prints for that input;
- :mod:`~zoo.serve.protocols.uploads`: the same route fed a multipart form or the file itself;
- :mod:`~zoo.serve.protocols.kserve`: the KServe / Triton v2 inference protocol (tensors in JSON or
  Triton's binary extension, and its classification extension).

Each turns a body into :class:`zoo.serve.inputs.Item` s or tensors, and rows into an answer;
none knows about batching or HTTP routes.
"""
