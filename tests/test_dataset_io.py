"""Dataset format: encoders and readers round-trip, readers name the bad file, validate finds every problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from drivestack.cli.validate import ValidateConfig
from drivestack.cli.validate import run as run_validate
from drivestack.common.config import to_dict
from drivestack.common.io import write_atomic, write_json_atomic
from drivestack.sim.record.dataset_io import (
    EPISODE_INFO_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MEASUREMENT_KEYS,
    MEASUREMENTS_NAME,
    CameraSpec,
    DatasetError,
    DatasetFormat,
    EpisodeEntry,
    Manifest,
    encode_depth,
    encode_instance,
    encode_rgb,
    encode_semantic,
    list_episodes,
    load_manifest,
    measurement_line,
    read_depth,
    read_instance,
    read_measurements,
    read_rgb,
    read_semantic,
    save_manifest,
    validate_dataset,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (16, 32, 3), dtype=np.uint8)
SEMANTIC = RNG.integers(0, 29, (16, 32), dtype=np.uint8)
DEPTH = RNG.uniform(0.0, 1000.0, (16, 32)).astype(np.float32)
INSTANCE = RNG.integers(0, 65536, (16, 32), dtype=np.uint16)
ENCODED = {
    "rgb": encode_rgb(RGB, "jpg"),
    "semantic": encode_semantic(SEMANTIC),
    "depth": encode_depth(DEPTH),
    "instance": encode_instance(INSTANCE),
}
EPISODES = ("town000_route0000", "town000_route0001")


def make_dataset(root: Path, frames: int = 3) -> DatasetFormat:
    """A valid two-episode dataset with one 32x16 camera and every modality."""
    fmt = DatasetFormat([CameraSpec("front", 32, 16)], "jpg", instance=True)
    entries = []
    for i, name in enumerate(EPISODES):
        episode = root / name
        for frame in range(frames):
            for modality, _, path in fmt.frame_files(episode, frame):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, ENCODED[modality])
        records = [{**dict.fromkeys(MEASUREMENT_KEYS, 0), "frame": f} for f in range(frames)]
        (episode / MEASUREMENTS_NAME).write_bytes(b"".join(measurement_line(r) for r in records))
        entry = EpisodeEntry(name, 0, i, 10 + i, "completed", frames, frames, "max_frames")
        write_json_atomic(episode / EPISODE_INFO_NAME, to_dict(entry))
        entries.append(entry)
    save_manifest(root, Manifest(FORMAT_VERSION, "0.0.0", 0, fmt, {"seed": 0}, entries))
    return fmt


def test_images_round_trip(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(encode_rgb(RGB, "png"))
    assert np.array_equal(read_rgb(png), RGB)
    reddish = np.zeros((16, 32, 3), np.uint8) + np.array([200, 60, 20], np.uint8)
    jpg = tmp_path / "a.jpg"
    jpg.write_bytes(encode_rgb(reddish, "jpg", jpeg_quality=100))
    assert np.abs(read_rgb(jpg).astype(int) - reddish).max() <= 2  # lossy, but in RGB order
    sem = tmp_path / "s.png"
    sem.write_bytes(ENCODED["semantic"])
    assert np.array_equal(read_semantic(sem, shape=(16, 32)), SEMANTIC)
    inst = tmp_path / "i.png"
    inst.write_bytes(ENCODED["instance"])
    assert np.array_equal(read_instance(inst), INSTANCE)


def test_depth_is_centimetres_clipped_at_655_35(tmp_path):
    depth = np.array([[0.0, 0.004, 1.234, 1.236, 655.35, 700.0, 1000.0, -1.0]], dtype=np.float32)
    path = tmp_path / "d.png"
    path.write_bytes(encode_depth(depth))
    expected = np.array([[0.0, 0.0, 1.23, 1.24, 655.35, 655.35, 655.35, 0.0]], dtype=np.float32)
    assert np.allclose(read_depth(path), expected, atol=1e-6) and read_depth(path).dtype == np.float32
    with pytest.raises(ValueError, match="NaN"):
        encode_depth(np.full((2, 2), np.nan, dtype=np.float32))


def test_encoders_check_their_input():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_rgb(RGB.astype(np.float32))
    with pytest.raises(ValueError, match="semantic must be HxW uint8"):
        encode_semantic(SEMANTIC[..., None])
    with pytest.raises(ValueError, match="depth must be HxW float32"):
        encode_depth(DEPTH.astype(np.float64))
    with pytest.raises(ValueError, match="instance must be HxW uint16"):
        encode_instance(INSTANCE.astype(np.int32))


@pytest.mark.parametrize(
    "content, reader, message",
    [
        (None, read_rgb, "cannot read image"),
        (b"", read_rgb, "empty image file"),
        (b"not an image", read_semantic, "cannot decode"),
        (ENCODED["depth"][:60], read_depth, "cannot decode"),
        (ENCODED["depth"], read_semantic, "HxW uint8, got \\(16, 32\\) uint16"),
        (ENCODED["semantic"], read_rgb, "HxWx3 uint8"),
        (ENCODED["rgb"], lambda p: read_rgb(p, shape=(8, 16)), "image is 32x16, expected 16x8"),
    ],
)
def test_readers_raise_dataset_error_naming_the_file(tmp_path, content, reader, message):
    path = tmp_path / "image.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as info:
        reader(path)
    assert info.value.path == path and str(info.value).startswith(str(path))
    assert isinstance(info.value, ValueError)


def test_read_measurements_names_the_bad_line(tmp_path):
    path = tmp_path / MEASUREMENTS_NAME
    good = [{**dict.fromkeys(MEASUREMENT_KEYS, 0), "frame": f} for f in range(2)]
    path.write_bytes(b"".join(measurement_line(r) for r in good))
    assert read_measurements(path) == good
    path.write_bytes(measurement_line(good[0]) + b'{"frame": 1, "spe\n')
    with pytest.raises(DatasetError, match="line 2") as info:
        read_measurements(path)
    assert info.value.path == path
    path.write_bytes(measurement_line(good[0]) + measurement_line(good[1])[:-5])
    with pytest.raises(DatasetError, match="line 2: no final newline"):
        read_measurements(path)
    path.write_bytes(measurement_line({"frame": 0}))
    with pytest.raises(DatasetError, match="line 1: missing keys"):
        read_measurements(path)
    path.write_bytes(measurement_line(good[1]) + measurement_line(good[0]))
    with pytest.raises(DatasetError, match="line 2: frame 0 does not increase"):
        read_measurements(path)
    with pytest.raises(DatasetError, match="cannot read measurements"):
        read_measurements(tmp_path / "missing.jsonl")


def test_manifest_round_trip_and_errors(tmp_path):
    fmt = make_dataset(tmp_path)
    manifest = load_manifest(tmp_path)
    assert manifest.format == fmt and [e.name for e in manifest.episodes] == list(EPISODES)
    assert list_episodes(tmp_path) == [tmp_path / name for name in EPISODES]

    path = tmp_path / MANIFEST_NAME
    data = json.loads(path.read_text())
    data["episodes"][1]["status"] = "pending"
    path.write_text(json.dumps(data))
    assert list_episodes(tmp_path) == [tmp_path / EPISODES[0]]
    del data["format"]["cameras"]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="manifest.json") as info:
        load_manifest(tmp_path)
    assert info.value.path == path
    path.write_text('{"format_version": 1,')
    with pytest.raises(DatasetError, match="manifest is unreadable"):
        load_manifest(tmp_path)
    path.unlink()
    with pytest.raises(DatasetError, match="manifest is missing"):
        load_manifest(tmp_path)


def test_validate_accepts_a_good_dataset(tmp_path, capsys):
    make_dataset(tmp_path)
    assert validate_dataset(tmp_path) == []
    assert run_validate(ValidateConfig(root=str(tmp_path))) == 0
    assert "dataset is valid" in capsys.readouterr().out


def test_validate_names_every_problem(tmp_path, capsys):
    make_dataset(tmp_path)
    first, second = tmp_path / EPISODES[0], tmp_path / EPISODES[1]
    (first / "rgb" / "front_000001.jpg").unlink()
    (first / "depth" / "front_000002.png").write_bytes(ENCODED["depth"][:50])
    (first / "semantic" / "front_000000.png").write_bytes(encode_semantic(SEMANTIC[:8]))
    (first / "instance" / "front_000000.png").write_bytes(ENCODED["semantic"])
    (first / "rgb" / "front_000009.jpg").write_bytes(ENCODED["rgb"])
    (second / EPISODE_INFO_NAME).unlink()
    jsonl = second / MEASUREMENTS_NAME
    lines = jsonl.read_bytes().split(b"\n")
    jsonl.write_bytes(lines[0] + b"\n" + b"{oops\n" + lines[2][:10])

    problems = validate_dataset(tmp_path)
    expected = [
        (first / "rgb" / "front_000001.jpg", "cannot read image"),
        (first / "depth" / "front_000002.png", "cannot decode"),
        (first / "semantic" / "front_000000.png", "image is 32x8, expected 32x16"),
        (first / "instance" / "front_000000.png", "HxW uint16"),
        (first / "rgb" / "front_000009.jpg", "belongs to no frame"),
        (second / EPISODE_INFO_NAME, "episode info is missing"),
        (jsonl, "line 2:"),
        (jsonl, "line 3: no final newline"),
    ]
    for path, message in expected:
        assert any(p.startswith(str(path)) and message in p for p in problems), (path, message, problems)
    assert len(problems) == len(expected)

    assert run_validate(ValidateConfig(root=str(tmp_path))) == 1
    out = capsys.readouterr().out
    assert f"{len(expected)} problem(s)" in out and str(first / "rgb" / "front_000001.jpg") in out


def test_validate_checks_frame_counts_and_status(tmp_path):
    make_dataset(tmp_path)
    manifest = load_manifest(tmp_path)
    manifest.episodes[0].frames = 5
    manifest.episodes[1].status = "failed"
    save_manifest(tmp_path, manifest)
    problems = validate_dataset(tmp_path)
    assert len(problems) == 3, problems
    assert "3 frames, manifest says 5" in problems[0] and EPISODE_INFO_NAME in problems[0]
    assert "3 frames, manifest says 5" in problems[1] and MEASUREMENTS_NAME in problems[1]
    assert "not completed (status 'failed')" in problems[2]


def test_validate_reports_a_missing_manifest(tmp_path):
    assert validate_dataset(tmp_path) == [f"{tmp_path / MANIFEST_NAME}: manifest is missing"]
