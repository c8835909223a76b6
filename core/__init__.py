"""The shared core of wbc-edge: what train, convert and the edge app all depend on.

This package is the device's core: the bundle contract (bundle, vocab), preprocessing
(preprocess_spec, preprocess, decode, colour, nucleus, field), errors for people, the device
runtime interface that parity and the edge app both call (runtime, with cpu for the default
thread count), the count model (temperature, label_shift). The training-data tooling (data
listing, source-cell groups, splits, metrics, the confusion picture) is the subpackage
`dataset`, which the device never imports. The core imports no stage (`wbc_edge.train`,
`wbc_edge.convert`, `wbc_edge.edge_app`) and never TensorFlow.
"""
