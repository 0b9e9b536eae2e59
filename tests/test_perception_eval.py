"""AP@0.5 by box size: each bin scores only its own ground truth (pycocotools area ranges)."""

import pytest
import torch
from drivestack.perception.evaluation import EvalResult, SizeBinnedAP


def _image(gt_boxes, gt_labels, det_boxes, det_labels, det_scores):
    gt = {"boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(gt_labels)}
    pred = {"boxes": torch.tensor(det_boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(det_labels),
            "scores": torch.tensor(det_scores, dtype=torch.float32)}  # fmt: skip
    return pred, gt


def test_each_size_bin_scores_its_own_boxes():
    metric = SizeBinnedAP(num_classes=2)
    # image 0: a 30x30 vehicle found exactly, a 4x4 vehicle missed (the 4x4 detection beside it does not touch it)
    pred, gt = _image([[10, 10, 40, 40], [100, 50, 104, 54]], [0, 0],
                      [[10, 10, 40, 40], [120, 50, 124, 54]], [0, 0], [0.9, 0.8])  # fmt: skip
    metric.update([pred], [gt])
    # image 1: a 10x10 vehicle found at IoU 0.9, a pedestrian with no detection
    pred, gt = _image([[50, 50, 60, 60], [5, 5, 11, 17]], [0, 1], [[50, 50, 60, 59]], [0], [0.7])
    metric.update([pred], [gt])

    vehicle = metric.compute()[0]
    assert vehicle[">=20"] == [pytest.approx(1.0), 1]
    assert vehicle["8-12"] == [pytest.approx(1.0), 1]
    assert vehicle["<5"] == [0.0, 1]  # missed
    assert vehicle["5-8"] == [0.0, 0] and vehicle["12-20"] == [0.0, 0]
    pedestrian = metric.compute()[1]
    assert pedestrian["8-12"] == [0.0, 1]  # sqrt(6 * 12) = 8.5 px, never detected
    assert sum(n for _, n in pedestrian.values()) == 1


def test_a_false_positive_of_another_size_does_not_lower_a_bin():
    metric = SizeBinnedAP(num_classes=1)
    # a 30x30 box found with a lower score than a 3x3 false positive elsewhere: the 3x3 detection lies in the
    # "<5" range, so it is ignored when the ">=20" bin is scored
    pred, gt = _image([[10, 10, 40, 40]], [0], [[10, 10, 40, 40], [200, 100, 203, 103]], [0, 0], [0.5, 0.9])
    metric.update([pred], [gt])
    assert metric.compute()[0][">=20"] == [pytest.approx(1.0), 1]


def test_table_shows_the_size_bins():
    metric = SizeBinnedAP(num_classes=1)
    pred, gt = _image([[10, 10, 40, 40]], [0], [[10, 10, 40, 40]], [0], [0.9])
    metric.update([pred], [gt])
    result = EvalResult(images=1, iou={"road": 1.0}, miou=1.0, ap50={"vehicle": 1.0}, ap={"vehicle": 1.0}, map50=1.0,
                        map=1.0, gt_boxes={"vehicle": 1}, ap50_by_size={"vehicle": metric.compute()[0]})  # fmt: skip
    table = result.table()
    assert ">=20" in table and "1.000 (1)" in table


def test_a_box_on_a_bin_edge_is_scored_in_one_bin():
    # an 8x8 box (sqrt(area) = 8, the edge of "5-8" and "8-12") missed, a 6x6 box found: COCOeval's area range
    # is closed at both ends, so without the half-open upper edge the 8x8 miss would also count in "5-8"
    metric = SizeBinnedAP(num_classes=1)
    pred, gt = _image([[10, 10, 18, 18], [100, 50, 106, 56]], [0, 0], [[100, 50, 106, 56]], [0], [0.9])
    metric.update([pred], [gt])
    bins = metric.compute()[0]
    assert bins["5-8"] == [pytest.approx(1.0), 1]
    assert bins["8-12"] == [0.0, 1]


def test_no_detections_at_all_scores_zero_where_there_are_boxes():
    metric = SizeBinnedAP(num_classes=1)
    pred, gt = _image([[10, 10, 40, 40]], [0], [], [], [])
    metric.update([pred], [gt])
    bins = metric.compute()[0]
    assert bins[">=20"] == [0.0, 1] and bins["<5"] == [0.0, 0]
