"""Evaluation of the multi-task network: mIoU (torchmetrics Jaccard), COCO mAP (torchmetrics, pycocotools
backend) per class, AP@0.5 per class by box size (pycocotools area ranges), and latency. Results are plain
dicts (JSON) with a readable table."""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from drivestack.perception.classes import IGNORE_INDEX, ClassMap
from drivestack.perception.data.dataset import collate
from drivestack.perception.postprocess import Decoding, postprocess
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.detection import MeanAveragePrecision

SIZE_BINS = (0.0, 5.0, 8.0, 12.0, 20.0, float("inf"))  # box sizes, sqrt(area) in pixels, of the AP-by-size table


@dataclass
class EvalResult:
    """Segmentation IoU and detection AP per class, their means, and latency."""

    images: int
    iou: dict[str, float]  # per segmentation class present in the ground truth
    miou: float  # mean over those classes
    ap50: dict[str, float]  # AP at IoU 0.5 per detection class present in the ground truth
    ap: dict[str, float]  # AP averaged over IoU 0.5:0.95 per detection class
    map50: float  # mean of ap50
    map: float  # mean of ap
    gt_boxes: dict[str, int] = field(default_factory=dict)  # ground-truth boxes per class
    ap50_by_size: dict[str, dict[str, list]] = field(default_factory=dict)  # class -> size bin -> [AP@0.5, boxes]
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def flat(self) -> dict[str, float]:
        """Scalars for logs: miou, map50, map and the per-class values."""
        out = {"miou": self.miou, "map50": self.map50, "map": self.map}
        out |= {f"iou/{k}": v for k, v in self.iou.items()}
        out |= {f"ap50/{k}": v for k, v in self.ap50.items()}
        return out

    def table(self) -> str:
        lines = [f"{'segmentation class':<22}{'IoU':>8}"]
        lines += [f"{k:<22}{v:8.3f}" for k, v in self.iou.items()]
        lines += [f"{'mean (classes present)':<22}{self.miou:8.3f}", "",
                  f"{'detection class':<22}{'boxes':>7}{'AP50':>8}{'AP50:95':>9}"]  # fmt: skip
        lines += [f"{k:<22}{self.gt_boxes.get(k, 0):7d}{self.ap50[k]:8.3f}{self.ap[k]:9.3f}" for k in self.ap50]
        lines.append(f"{'mean (classes present)':<22}{sum(self.gt_boxes.values()):7d}{self.map50:8.3f}{self.map:9.3f}")
        if self.ap50_by_size:
            bins = list(next(iter(self.ap50_by_size.values())))
            lines += ["", "AP@0.5 (boxes) by box size, sqrt(area) in px",
                      f"{'detection class':<22}" + "".join(f"{b:>14}" for b in bins)]  # fmt: skip
            for name, row in self.ap50_by_size.items():
                cells = ("-" if n == 0 else f"{ap:.3f} ({n})" for ap, n in row.values())
                lines.append(f"{name:<22}" + "".join(f"{c:>14}" for c in cells))
        if self.latency_ms:
            lines += ["", "latency (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in self.latency_ms.items())]
        return "\n".join(lines)


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset: Dataset, class_map: ClassMap, batch_size: int = 16, score_threshold: float = 0.01,
    device: str | torch.device = "cpu", size_bins: tuple[float, ...] | None = SIZE_BINS,
    decoding: Decoding | None = None,
) -> EvalResult:  # fmt: skip
    """mIoU over the segmentation classes present in the ground truth; AP per detection class present; AP@0.5
    by box size over ``size_bins`` (None: skipped). Detections are decoded as ``decoding`` says (default:
    ``Decoding()``)."""
    decoding = decoding or Decoding()
    model.eval()
    num_seg = len(class_map.seg)
    jaccard = MulticlassJaccardIndex(num_seg, average="none", ignore_index=IGNORE_INDEX).to(device)
    seg_pixels = torch.zeros(num_seg, dtype=torch.long)
    map_all = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend="pycocotools")
    map_50 = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=[0.5], class_metrics=True,
                                  backend="pycocotools")  # fmt: skip
    gt_counts = torch.zeros(len(class_map.det), dtype=torch.long)
    by_size = SizeBinnedAP(len(class_map.det), size_bins) if size_bins else None
    images = 0
    for inputs, targets in DataLoader(dataset, batch_size, collate_fn=collate):
        outputs = model(inputs.to(device))
        predictions = postprocess(outputs, score_threshold, max_detections=100, **decoding.kwargs())
        mask = targets["mask"].to(device).long()
        jaccard.update(outputs["seg"].argmax(1), mask)
        seg_pixels += torch.bincount(mask[mask != IGNORE_INDEX].flatten().cpu(), minlength=num_seg)
        preds = [{"boxes": p.boxes.cpu(), "scores": p.scores.cpu(), "labels": p.labels.cpu()} for p in predictions]
        gts = [{"boxes": b, "labels": l} for b, l in zip(targets["boxes"], targets["labels"])]
        for l in targets["labels"]:
            gt_counts += torch.bincount(l, minlength=len(class_map.det))
        map_all.update(preds, gts)
        map_50.update(preds, gts)
        if by_size:
            by_size.update(preds, gts)
        images += len(inputs)
    iou_all = jaccard.compute().cpu()
    iou = {name: float(iou_all[i]) for i, name in enumerate(class_map.seg_names) if seg_pixels[i] > 0}
    ap = _per_class(map_all.compute(), class_map, gt_counts)
    ap50 = _per_class(map_50.compute(), class_map, gt_counts)
    sizes = by_size.compute() if by_size else {}
    return EvalResult(
        images=images, iou=iou, miou=sum(iou.values()) / max(1, len(iou)), ap50=ap50, ap=ap,
        map50=sum(ap50.values()) / max(1, len(ap50)), map=sum(ap.values()) / max(1, len(ap)),
        gt_boxes={name: int(gt_counts[i]) for i, name in enumerate(class_map.det_names) if gt_counts[i] > 0},
        ap50_by_size={name: sizes[i] for i, name in enumerate(class_map.det_names) if i in sizes and gt_counts[i] > 0},
    )  # fmt: skip


class SizeBinnedAP:
    """AP@0.5 of one class within box-size bins [lo, hi) of sqrt(area) (COCO area ranges, as pycocotools
    evaluates them: ground truth outside the bin and the detections matched to it are ignored, and so are
    unmatched detections outside it; a detection of another size that matches a box of the bin counts)."""

    def __init__(self, num_classes: int, bins: tuple[float, ...] = SIZE_BINS) -> None:
        self.num_classes, self.bins = num_classes, bins
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.detections: list[dict] = []

    def update(self, preds: list[dict], gts: list[dict]) -> None:
        """Lists of per-image dicts, as torchmetrics takes them: boxes (N,4) xyxy, labels, and scores."""
        for pred, gt in zip(preds, gts):
            image = len(self.images)
            self.images.append({"id": image})
            for (x1, y1, x2, y2), label in zip(gt["boxes"].tolist(), gt["labels"].tolist()):
                self.annotations.append({"id": len(self.annotations) + 1, "image_id": image, "category_id": label,
                                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})  # fmt: skip
            for (x1, y1, x2, y2), label, score in zip(pred["boxes"].tolist(), pred["labels"].tolist(), pred["scores"].tolist()):
                self.detections.append({"image_id": image, "category_id": label, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                        "score": score})  # fmt: skip

    def compute(self) -> dict[int, dict[str, list]]:
        """Class -> size bin name ("5-8", ">=20") -> [AP@0.5 (0 when nothing in the bin), ground-truth boxes in
        the bin]; one pycocotools evaluation over every class and bin."""
        edges = list(zip(self.bins[:-1], self.bins[1:]))
        names = [f"<{hi:g}" if lo == 0 else (f">={lo:g}" if hi == float("inf") else f"{lo:g}-{hi:g}") for lo, hi in edges]
        counts = np.zeros((self.num_classes, len(edges)), int)
        for a in self.annotations:
            counts[a["category_id"], sum(lo * lo <= a["area"] for lo, _ in edges) - 1] += 1
        ap = np.zeros(counts.shape)
        if self.detections:
            evaluator = self._evaluator(edges)
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
                evaluator.evaluate()
                evaluator.accumulate()
            precision = evaluator.eval["precision"][0, :, :, :, 0]  # (recall, class, bin); -1 where no ground truth
            scored = (precision > -1).sum(0)
            ap = np.where(scored > 0, np.where(precision > -1, precision, 0).sum(0) / np.maximum(scored, 1), 0.0)
        return {c: {name: [float(ap[c, b]), int(counts[c, b])] for b, name in enumerate(names)} for c in range(self.num_classes)}

    def _evaluator(self, edges: list[tuple[float, float]]) -> COCOeval:
        with contextlib.redirect_stdout(io.StringIO()):
            truth = COCO()
            truth.dataset = {"images": self.images, "annotations": self.annotations,
                             "categories": [{"id": i} for i in range(self.num_classes)]}  # fmt: skip
            truth.createIndex()
            found = truth.loadRes(self.detections)
        evaluator = COCOeval(truth, found, "bbox")
        evaluator.params.catIds = list(range(self.num_classes))
        evaluator.params.iouThrs = np.array([0.5])
        # COCOeval's area range is closed at both ends: each upper edge is moved just below hi^2
        evaluator.params.areaRng = [[lo * lo, 1e10 if hi == float("inf") else float(np.nextafter(hi * hi, 0))] for lo, hi in edges]
        evaluator.params.areaRngLbl = [str(i) for i in range(len(edges))]
        evaluator.params.maxDets = [100]
        return evaluator


def _per_class(result: dict, class_map: ClassMap, gt_counts: torch.Tensor) -> dict[str, float]:
    """AP per class with ground truth (COCO's -1 for 'no ground truth' dropped)."""
    classes = result["classes"].flatten().tolist()
    values = result["map_per_class"].flatten().tolist()
    by_class = dict(zip(classes, values))
    return {name: max(0.0, by_class.get(i, 0.0)) for i, name in enumerate(class_map.det_names) if gt_counts[i] > 0}


@torch.no_grad()
def measure_latency(model: nn.Module, size: tuple[int, int] = (160, 320), batch: int = 1, runs: int = 50,
                    warmup: int = 5) -> float:  # fmt: skip
    """Median milliseconds of one forward pass (no post-processing) on a uint8 batch, on the CPU."""
    model.eval()
    x = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
