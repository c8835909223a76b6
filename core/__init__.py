"""The shared core of wbc-edge: what train, convert and the edge app all depend on.

The bundle contract (bundle, vocab), preprocessing (preprocess_spec, preprocess, decode,
colour, nucleus, field), errors for people, metrics and the one confusion picture, the device
runtime interface that parity and the edge app both call, data listing and split manifests.
It imports no stage (`wbc_edge.train`, `wbc_edge.convert`, `wbc_edge.edge_app`) and never
TensorFlow.
"""
