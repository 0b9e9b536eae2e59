"""`drivestack soup`: the uniform mean of checkpoints of one model, refused across models."""

import pytest
import torch
from drivestack.cli import main
from drivestack.common.checkpoint import load_checkpoint, load_model, model_spec, save_checkpoint
from drivestack.perception.models.multitask import build_multitask
from perception_helpers import tiny_model_config


def _checkpoint(path, seed: int, config=None) -> dict:
    config = config or tiny_model_config()
    torch.manual_seed(seed)
    model = build_multitask(config)
    for buffer in model.buffers():  # BatchNorm statistics differ between checkpoints too
        if buffer.is_floating_point():
            buffer.normal_().abs_()
    state = {"model": model_spec("perception", config), "state_dict": model.state_dict(), "epoch": seed}
    save_checkpoint(path, state)
    return state["state_dict"]


def test_soup_averages_every_floating_point_tensor_and_rebuilds(tmp_path):
    a, b = _checkpoint(tmp_path / "a.pt", 0), _checkpoint(tmp_path / "b.pt", 1)
    out = tmp_path / "soup" / "last.pt"
    assert main(["soup", f"checkpoints=[{tmp_path / 'a.pt'},{tmp_path / 'b.pt'}]", f"out={out}"]) == 0
    soup = load_checkpoint(out)
    assert soup["soup"] == [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")] and "optimizer" not in soup
    assert any(not torch.equal(a[n], b[n]) for n in a if a[n].is_floating_point())  # the two really differ
    for name, tensor in soup["state_dict"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (a[name] + b[name]) / 2, msg=name)
        else:
            assert torch.equal(tensor, b[name]), name  # integer buffers (BatchNorm's counter) from the last one
    model, _ = load_model(out)  # rebuilds from the soup alone, with the mean weights
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, soup["state_dict"][name]), name


def test_soup_refuses_checkpoints_of_another_model(tmp_path):
    from drivestack.common.training.averaging import average_checkpoints

    _checkpoint(tmp_path / "a.pt", 0)
    wider = tiny_model_config()
    wider.fpn_channels = 24
    _checkpoint(tmp_path / "wide.pt", 1, wider)
    with pytest.raises(ValueError, match=r"wide.pt: another model than .*a.pt"):
        average_checkpoints([tmp_path / "wide.pt", tmp_path / "a.pt"])


def test_soup_needs_two_checkpoints(tmp_path, capsys):
    _checkpoint(tmp_path / "a.pt", 0)
    assert main(["soup", f"checkpoints=[{tmp_path / 'a.pt'}]", f"out={tmp_path / 'out.pt'}"]) == 2
    assert "two or more" in capsys.readouterr().err
    assert main(["soup", f"checkpoints=[{tmp_path / 'a.pt'},{tmp_path / 'gone.pt'}]", f"out={tmp_path / 'out.pt'}"]) == 2
    assert f"checkpoints not found: {tmp_path / 'gone.pt'}" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_a_soup_is_stale_once_a_source_is_newer(tmp_path):
    import os

    from drivestack.cli.soup import SoupConfig
    from drivestack.planning.pipeline import _averaged

    sources = [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
    _checkpoint(sources[0], 0), _checkpoint(sources[1], 1)
    assert main(["soup", f"checkpoints=[{sources[0]},{sources[1]}]", f"out={tmp_path / 'soup.pt'}"]) == 0
    assert _averaged(SoupConfig(sources, str(tmp_path / "soup.pt")))
    assert not _averaged(SoupConfig(sources[::-1], str(tmp_path / "soup.pt")))  # other sources (or order)
    made = (tmp_path / "soup.pt").stat().st_mtime
    os.utime(sources[1], (made + 60, made + 60))  # b retrained after the soup
    assert not _averaged(SoupConfig(sources, str(tmp_path / "soup.pt")))
