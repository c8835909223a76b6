"""wbc-edge training stage: data listing, source-cell groups, splits, model zoo, training."""
