"""Tests for core.dataset.grouping and the modules it runs on: recover source cells from
augmented copies (synthetic data), the groups CSV and the montage."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import render_cell

from wbc_edge.core.dataset import grouping
from wbc_edge.core.dataset.cell_groups import read_groups_csv, write_groups_csv
from wbc_edge.core.dataset.group_montage import write_montage
from wbc_edge.core.dataset.grouping import GroupingResult
from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.pair_verify import pair_inliers, similarity_inliers
from wbc_edge.core.dataset.sift_features import gray_features, valid_mask
from wbc_edge.core.errors import DataError

PARAMS = GroupingParams(control_pairs=400)


def pair_scores(truth: list[str], found: list[str]) -> tuple[float, float]:
    """Precision and recall of the same-group relation over all pairs."""
    tp = fp = fn = 0
    for i, j in combinations(range(len(truth)), 2):
        same, together = truth[i] == truth[j], found[i] == found[j]
        tp += same and together
        fp += together and not same
        fn += same and not together
    return tp / max(1, tp + fp), tp / max(1, tp + fn)


@pytest.fixture(scope="module")
def recovered(cell_tree) -> tuple[Path, list, GroupingResult]:
    root, records = cell_tree
    paths = [root / r.path for r in records]
    labels = [r.label for r in records]
    expected = grouping.expected_k_from_names(paths, labels)
    result = grouping.recover_groups(paths, labels, PARAMS, expected, workers=2, progress=False)
    return root, records, result


def test_groups_match_ground_truth_cells(recovered) -> None:
    _, records, result = recovered
    precision, recall = pair_scores([r.cell_id for r in records], result.groups)
    assert (precision, recall) == (1.0, 1.0)
    for cls, row in result.per_class.items():
        assert row["groups"] == row["expected_k"] == 3, cls
        assert row["copies_min"] == row["copies_max"] == 4
    assert all(g.startswith(f"{r.label}-") for g, r in zip(result.groups, records, strict=True))


def test_negative_control_sits_below_threshold(recovered) -> None:
    _, _, result = recovered
    nc = result.negative_control
    assert nc["pairs"] == PARAMS.control_pairs
    assert nc["max"] < PARAMS.min_inliers and nc["p99"] <= nc["max"]
    assert nc["same_cell_pairs"] == 0 and result.cross_class == []


def test_in_process_run_agrees_with_pool(recovered) -> None:
    root, records, result = recovered
    some = [i for i, r in enumerate(records) if r.label in ("LYMPHOCYTE", "MONOCYTE")]
    params = GroupingParams(control_pairs=50)
    alone = grouping.recover_groups(
        [root / records[i].path for i in some],
        [records[i].label for i in some],
        params,
        workers=1,
        progress=False,
    )
    assert alone.groups == [result.groups[i] for i in some]


def test_expected_k_from_names(cell_tree) -> None:
    root, records = cell_tree
    paths = [root / r.path for r in records]
    k = grouping.expected_k_from_names(paths, [r.label for r in records])
    assert k == dict.fromkeys(("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"), 3)


def test_flipped_copy_matches_through_mirror() -> None:
    rgb, _ = render_cell("NEUTROPHIL", np.random.default_rng(3), (160, 120))
    turn = cv2.getRotationMatrix2D((80.0, 60.0), 35.0, 1.05)
    copy = cv2.warpAffine(np.ascontiguousarray(rgb[:, ::-1]), turn, (160, 120))  # black corners
    feats = []
    for img in (rgb, copy):
        feats.append(gray_features(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), PARAMS))
    assert similarity_inliers(feats[0], feats[1], PARAMS) < PARAMS.min_inliers
    assert pair_inliers(feats[0], feats[1], PARAMS) >= 2 * PARAMS.min_inliers


def test_black_corners_are_masked() -> None:
    gray = np.full((60, 80), 200, np.uint8)
    gray[:10, :10] = 0
    mask = valid_mask(gray, black_level=20, erode=7)
    assert mask[:12, :12].max() == 0 and mask[30, 40] == 255


def test_csv_round_trip(recovered, tmp_path: Path) -> None:
    root, records, result = recovered
    out = tmp_path / "groups.csv"
    paths = [root / r.path for r in records]
    labels = [r.label for r in records]
    write_groups_csv(out, root, paths, labels, result.groups)
    assert out.read_text().splitlines()[0] == "path,class,group"
    assert records[0].path.as_posix() in out.read_text()
    table = read_groups_csv(out)
    assert table == {(r.label, r.path.name): g for r, g in zip(records, result.groups, strict=True)}


@pytest.mark.parametrize(
    "text",
    ["file,label,group\na.jpeg,EOSINOPHIL,E-1\n", "path,class,group\na.jpeg,EOSINOPHIL\n", ""],
)
def test_bad_csv_raises_naming_the_file(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "bad.csv"))) as err:
        read_groups_csv(bad)
    assert "\n" not in str(err.value)


def test_montage_has_one_row_per_group(recovered, tmp_path: Path) -> None:
    root, records, result = recovered
    out = tmp_path / "montage.png"
    write_montage(out, root, [r.path for r in records], result.groups, 2, 3)
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] == 4 * 2 * (72 + 2)
