"""The one union-find: disjoint sets over 0..n-1 (recovered source cells in
`dataset.class_groups`, a nucleus's lobes in `nucleus`)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving; a set's root is its smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def components(self) -> dict[int, list[int]]:
        """root -> its members, in order."""
        comps: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            comps[self.find(i)].append(i)
        return dict(comps)

    def labels(self) -> np.ndarray:
        """Group numbers 0..k-1, one per element, in order of first appearance."""
        dense: dict[int, int] = {}
        return np.array(
            [dense.setdefault(self.find(i), len(dense)) for i in range(len(self.parent))],
            np.int64,
        )
