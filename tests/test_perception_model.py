"""The multi-task network: init loss, overfitting one batch, a zero-input baseline, outputs, post-processing, ONNX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from drivestack.perception.classes import ClassMap
from drivestack.perception.data.dataset import DrivingDataset, collate
from drivestack.perception.losses import detection_targets, heatmap_prior_loss
from drivestack.perception.models.multitask import DET_STRIDE, ModelConfig, build_multitask
from drivestack.perception.postprocess import decode_detections, postprocess, window_max
from perception_helpers import recorded_dataset, tiny_model_config


def _batch(count: int = 4) -> tuple[torch.Tensor, dict]:
    dataset = DrivingDataset(recorded_dataset(), [0, 1, 2], ClassMap())
    step = len(dataset) // count
    return collate([dataset[i] for i in range(0, step * count, step)])


def test_initial_losses_match_their_theoretical_values():
    torch.manual_seed(0)
    images, targets = _batch()
    config = tiny_model_config()
    model = build_multitask(config)
    with torch.no_grad():
        losses = model.compute_loss(model(images), targets)
    assert losses["seg"].item() == pytest.approx(math.log(config.num_seg_classes), abs=1e-4)  # zero-init classifier
    heatmap, _, _ = detection_targets(targets["boxes"], targets["labels"], config.num_det_classes,
                                      (images.shape[2] // DET_STRIDE, images.shape[3] // DET_STRIDE), DET_STRIDE)  # fmt: skip
    assert heatmap.eq(1).sum() > 0, "the tiny dataset should contain boxes"
    expected = heatmap_prior_loss(config.prior_prob, heatmap)
    assert losses["heatmap"].item() == pytest.approx(expected, rel=0.05)


def _train(images: torch.Tensor, targets: dict, steps: int = 50, seed: int = 0) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    model = build_multitask(tiny_model_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(steps):
        losses = model.compute_loss(model(images), targets)
        first = first or {k: v.item() for k, v in losses.items()}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    return first, {k: v.item() for k, v in losses.items()}


@pytest.fixture(scope="module")
def trained_on_one_batch():
    images, targets = _batch()
    real = _train(images, targets)
    zeroed = _train(torch.zeros_like(images), targets)
    return real, zeroed


def test_overfits_one_batch(trained_on_one_batch):
    (first, last), _ = trained_on_one_batch
    assert sum(last.values()) < 0.3 * sum(first.values()), (first, last)
    assert last["seg"] < 0.4 * first["seg"] and last["heatmap"] < 0.2 * first["heatmap"]


def test_zeroed_inputs_do_worse(trained_on_one_batch):
    (_, real), (_, zeroed) = trained_on_one_batch
    assert sum(real.values()) < 0.8 * sum(zeroed.values()), (real, zeroed)
    assert real["heatmap"] < 0.5 * zeroed["heatmap"] and real["seg"] < zeroed["seg"]


def test_forward_returns_the_same_structure_in_train_and_eval():
    model = build_multitask(tiny_model_config())
    images = torch.randint(0, 256, (2, 3, 64, 128), dtype=torch.uint8)
    shapes = {}
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            shapes[mode] = {k: tuple(v.shape) for k, v in model(images).items()}
    assert shapes[True] == shapes[False] == {"seg": (2, 10, 64, 128), "heatmap": (2, 5, 16, 32), "box": (2, 4, 16, 32)}


def test_default_model_is_small():
    from drivestack.perception.models.info import count_parameters, gflops

    model = build_multitask(ModelConfig())
    assert count_parameters(model)["total"] <= 5_000_000
    assert 0.1 < gflops(model, 320, 160) < 2.0


def test_decode_finds_a_planted_box_with_numpy_or_torch_inputs():
    heatmap = torch.full((1, 5, 16, 32), -10.0)
    heatmap[0, 2, 5, 7] = 3.0  # class 2 centred at cell (x 7, y 5): pixel centre (30, 22)
    box = torch.ones(1, 4, 16, 32)
    box[0, :, 5, 7] = torch.tensor([6.0, 4.0, 10.0, 8.0])
    seg = torch.zeros(1, 10, 64, 128)
    seg[0, 4] = 1.0
    outputs = {"seg": seg, "heatmap": heatmap, "box": box}
    for p in (postprocess(outputs)[0], postprocess({k: v.numpy() for k, v in outputs.items()})[0]):
        assert p.labels.tolist() == [2] and p.scores[0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
        assert p.boxes[0].tolist() == [24.0, 18.0, 40.0, 30.0]
        assert (p.seg == 4).all()
    assert len(decode_detections(heatmap, box, DET_STRIDE, score_threshold=0.99)[0][0]) == 0


def test_adjacent_small_objects_survive_the_default_decoding_but_not_peak_pooling():
    heatmap = torch.full((1, 5, 16, 32), -10.0)
    heatmap[0, 0, 5, 7], heatmap[0, 0, 5, 8] = 3.0, 2.0  # two vehicles in neighbouring cells
    box = torch.full((1, 4, 16, 32), 2.0)  # 4x4 px boxes: the two do not overlap
    found = decode_detections(heatmap, box, DET_STRIDE)[0]
    assert sorted(found[0][:, 0].tolist()) == [28.0, 32.0]
    pooled = decode_detections(heatmap, box, DET_STRIDE, peak_window=3)[0]
    assert pooled[0][:, 0].tolist() == [28.0]
    with pytest.raises(ValueError, match="peak_window"):
        decode_detections(heatmap, box, DET_STRIDE, peak_window=2)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (1, 2, 2, 9), (1, 5, 40, 80)])
@pytest.mark.parametrize("window", [1, 3, 5, 9])
def test_window_max_is_max_pooling_bit_for_bit(shape, window):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(window))
    x[x > 0.8] = 0.8  # ties, as an INT8 graph's few distinct heatmap values give
    pooled = torch.nn.functional.max_pool2d(x, window, stride=1, padding=window // 2)
    assert torch.equal(window_max(x, window), pooled)


def test_onnx_export_runs_with_the_same_postprocessing(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_multitask(tiny_model_config()).eval()
    images, _ = _batch(2)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (images,), str(path), input_names=["images"], output_names=["seg", "heatmap", "box"],
                      dynamo=False)  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = dict(zip(["seg", "heatmap", "box"], session.run(None, {"images": images.numpy()})))
    with torch.no_grad():
        torch_out = model(images)
    for name in onnx_out:
        np.testing.assert_allclose(onnx_out[name], torch_out[name].numpy(), rtol=1e-3, atol=1e-3)
    a = postprocess(onnx_out, score_threshold=0.0)
    b = postprocess(torch_out, score_threshold=0.0)
    for pa, pb in zip(a, b):
        assert (pa.seg == pb.seg).float().mean() > 0.999
        np.testing.assert_allclose(pa.scores.numpy(), pb.scores.numpy(), atol=1e-4)
