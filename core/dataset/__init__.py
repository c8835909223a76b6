"""The training-data tooling: what `train/`, `convert/` and `benchmarks/` use and the device never
imports.

Listing and loading labelled images (data), the source cells behind augmented copies (grouping
and the modules it runs on, cell_groups), honest splits (splits), classification metrics
(metrics) and the one confusion picture (plots). Like the rest of the core it imports no stage;
`edge_app/` and the device's core modules never import it (tests/test_layout.py).
"""
