"""The driving dataset on disk: layout, image encodings, readers that name the bad file, and a validator.

Layout (see docs/dataset.md)::

    <root>/manifest.json
    <root>/<episode>/episode.json                      written when the episode completes
    <root>/<episode>/measurements.jsonl                one JSON object per saved frame
    <root>/<episode>/{rgb,semantic,depth,instance}/<camera>_<frame:06d>.<ext>

RGB is JPEG or PNG; semantic is an 8-bit PNG of CARLA tag ids; depth is a 16-bit PNG in centimetres
(clipped at 655.35 m); instance is a 16-bit PNG of actor ids. Every reader raises :class:`DatasetError`
with the file's path instead of an OpenCV error or ``None``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import cv2
import numpy as np
from drivestack.common.config import ConfigError, config_from_dict, to_dict
from drivestack.common.errors import InputError
from drivestack.common.io import write_json_atomic

FORMAT_VERSION = 2  # 2: records carry target_point
MANIFEST_NAME = "manifest.json"
EPISODE_INFO_NAME = "episode.json"
MEASUREMENTS_NAME = "measurements.jsonl"
MODALITIES = ("rgb", "semantic", "depth", "instance")  # image folders of an episode
DEPTH_SCALE = 100.0  # stored depth units per metre (centimetres)
DEPTH_MAX_M = 65535 / DEPTH_SCALE  # 655.35 m: farther (the sky at 1000 m) is clipped to this
MEASUREMENT_KEYS = (
    "frame", "time", "speed", "acceleration", "pose", "control", "expert_control", "expert_target_speed", "command", "route",
    "target_point", "route_progress", "route_length", "speed_limit", "traffic_light", "events", "boxes",
)  # fmt: skip


class DatasetError(InputError):
    """A dataset file that is missing, truncated or unreadable; ``path`` names it. Built from one argument
    (as a DataLoader worker's error is raised again in the main process) the message is that argument."""

    def __init__(self, path: str | Path, message: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if message is not None else str(path))
        self.path = Path(path) if message is not None else None


@dataclass
class CameraSpec:
    """A camera as stored in the dataset: its name and image size."""

    name: str
    width: int
    height: int


@dataclass
class DatasetFormat:
    """What files each saved frame has: cameras, RGB encoding, whether instance ids are stored."""

    cameras: list[CameraSpec]
    rgb_format: Literal["jpg", "png"] = "jpg"
    instance: bool = False

    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m != "instance" or self.instance)

    def extension(self, modality: str) -> str:
        return self.rgb_format if modality == "rgb" else "png"

    def frame_files(self, episode_dir: Path, frame: int) -> Iterator[tuple[str, CameraSpec, Path]]:
        """(modality, camera, path) of every image file of one saved frame."""
        for modality in self.modalities():
            for camera in self.cameras:
                yield modality, camera, image_path(episode_dir, modality, camera.name, frame, self.extension(modality))


@dataclass
class EpisodeEntry:
    """One episode: its seeds and, once recorded, how it went (also the content of ``episode.json``)."""

    name: str
    town_seed: int
    route_seed: int
    noise_seed: int
    status: Literal["pending", "completed", "failed"] = "pending"
    frames: int | None = None  # saved frames (lines of measurements.jsonl)
    steps: int | None = None  # simulated frames, saved or not
    end_reason: str | None = None  # route_completed, route_deviation, blocked or max_frames
    error: str | None = None  # why the last attempt failed


@dataclass
class Manifest:
    """``manifest.json``: how the dataset was made and the state of every episode."""

    format_version: int
    software_version: str
    seed: int
    format: DatasetFormat
    config: dict[str, Any]  # the collect config, as plain data
    episodes: list[EpisodeEntry] = field(default_factory=list)


def image_path(episode_dir: str | Path, modality: str, camera: str, frame: int, ext: str) -> Path:
    return Path(episode_dir) / modality / f"{camera}_{frame:06d}.{ext}"


def measurement_line(record: dict) -> bytes:
    """One measurements.jsonl line (strict JSON: no NaN or Infinity), newline included."""
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()


# ---------------------------------------------------------------- encoders


def _check_array(array: np.ndarray, what: str, dtype: type, channels: int | None) -> None:
    shape_ok = array.ndim == 2 if channels is None else (array.ndim == 3 and array.shape[2] == channels)
    if array.dtype != dtype or not shape_ok:
        want = "HxW" if channels is None else f"HxWx{channels}"
        raise ValueError(f"{what} must be {want} {np.dtype(dtype).name}, got {array.shape} {array.dtype}")


def _encode(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(f".{ext}", image, params or [])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {ext}")
    return buf.tobytes()


def encode_rgb(rgb: np.ndarray, fmt: Literal["jpg", "png"] = "jpg", jpeg_quality: int = 95) -> bytes:
    """HxWx3 uint8 RGB -> JPEG or PNG bytes."""
    _check_array(rgb, "rgb", np.uint8, 3)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if fmt == "jpg" else None
    return _encode(fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)


def encode_semantic(semantic: np.ndarray) -> bytes:
    """HxW uint8 tag ids -> 8-bit single-channel PNG."""
    _check_array(semantic, "semantic", np.uint8, None)
    return _encode("png", semantic)


def encode_depth(depth: np.ndarray) -> bytes:
    """HxW metres -> 16-bit PNG in centimetres, rounded, clipped to 0..655.35 m."""
    _check_array(depth, "depth", np.float32, None)
    if np.isnan(depth).any():
        raise ValueError("depth contains NaN")
    centimetres = np.rint(np.clip(depth, 0.0, DEPTH_MAX_M) * DEPTH_SCALE).astype(np.uint16)
    return _encode("png", centimetres)


def encode_instance(instance: np.ndarray) -> bytes:
    """HxW uint16 actor ids -> 16-bit single-channel PNG."""
    _check_array(instance, "instance", np.uint16, None)
    return _encode("png", instance)


# ---------------------------------------------------------------- readers


def _read_image(path: str | Path, dtype: type, channels: int | None, shape: tuple[int, int] | None) -> np.ndarray:
    """Decode an image file, checking dtype, channel count and (optionally) (height, width)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(path, f"cannot read image ({e.strerror or e})") from None
    if not data:
        raise DatasetError(path, "empty image file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(path, "OpenCV cannot decode this image (truncated or not an image)")
    try:
        _check_array(image, "image", dtype, channels)
    except ValueError as e:
        raise DatasetError(path, str(e)) from None
    if shape is not None and image.shape[:2] != tuple(shape):
        raise DatasetError(path, f"image is {image.shape[1]}x{image.shape[0]}, expected {shape[1]}x{shape[0]}")
    return image


def read_rgb(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    return cv2.cvtColor(_read_image(path, np.uint8, 3, shape), cv2.COLOR_BGR2RGB)


def read_semantic(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """HxW uint8 CARLA tag ids."""
    return _read_image(path, np.uint8, None, shape)


def read_depth(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """HxW float32 metres along the optical axis (655.35 = that far or farther)."""
    return _read_image(path, np.uint16, None, shape).astype(np.float32) / DEPTH_SCALE


def read_instance(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """HxW uint16 actor ids (0 = none)."""
    return _read_image(path, np.uint16, None, shape)


READERS: dict[str, Callable[..., np.ndarray]] = {
    "rgb": read_rgb,
    "semantic": read_semantic,
    "depth": read_depth,
    "instance": read_instance,
}


def parse_record(line: bytes) -> dict:
    """One measurements line -> record; ValueError saying what is wrong."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    missing = [k for k in MEASUREMENT_KEYS if k not in record]
    if missing:
        raise ValueError(f"missing keys {missing}")
    if isinstance(record["frame"], bool) or not isinstance(record["frame"], int):
        raise ValueError(f"'frame' must be an integer, got {record['frame']!r}")
    return record


def scan_measurements(path: str | Path) -> tuple[list[dict], list[DatasetError]]:
    """Parse a measurements.jsonl file; returns the good records and an error per bad line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return [], [DatasetError(path, f"cannot read measurements ({e.strerror or e})")]
    records, errors = [], []
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):
        try:
            record = parse_record(line)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            errors.append(DatasetError(path, f"line {number}: {e}"))
            continue
        if records and record["frame"] <= records[-1]["frame"]:
            errors.append(DatasetError(path, f"line {number}: frame {record['frame']} does not increase"))
        records.append(record)
    if lines[-1]:
        errors.append(DatasetError(path, f"line {len(lines)}: no final newline (truncated)"))
    return records, errors


def read_measurements(path: str | Path) -> list[dict]:
    """All records of a measurements.jsonl file; DatasetError at the first bad line."""
    records, errors = scan_measurements(path)
    if errors:
        raise errors[0]
    return records


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(path, f"{what} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(path, f"{what} is unreadable: {e}") from None


def _from_dict(cls: type, data: Any, path: Path) -> Any:
    if not isinstance(data, dict):
        raise DatasetError(path, f"expected a JSON object, got {type(data).__name__}")
    try:
        return config_from_dict(cls, data, source=str(path))
    except ConfigError as e:
        raise DatasetError(path, str(e).removeprefix(f"{path}: ")) from None


def load_manifest(root: str | Path) -> Manifest:
    """Read and check ``<root>/manifest.json``."""
    path = Path(root) / MANIFEST_NAME
    manifest = _from_dict(Manifest, _read_json(path, "manifest"), path)
    if manifest.format_version != FORMAT_VERSION:
        raise DatasetError(path, f"format_version {manifest.format_version} is not supported ({FORMAT_VERSION}); "
                                 f"re-record it with `drivestack collect` (docs/dataset.md: format versions)")
    return manifest


def save_manifest(root: str | Path, manifest: Manifest) -> None:
    write_json_atomic(Path(root) / MANIFEST_NAME, to_dict(manifest))


def read_episode_info(episode_dir: str | Path) -> EpisodeEntry:
    """Read ``<episode>/episode.json`` (present only for completed episodes)."""
    path = Path(episode_dir) / EPISODE_INFO_NAME
    return _from_dict(EpisodeEntry, _read_json(path, "episode info"), path)


def list_episodes(root: str | Path) -> list[Path]:
    """Folders of the completed episodes, in manifest order."""
    return [Path(root) / e.name for e in load_manifest(root).episodes if e.status == "completed"]


# ---------------------------------------------------------------- validation


def validate_dataset(root: str | Path) -> list[str]:
    """Every problem in a dataset (missing, truncated, unreadable or inconsistent files); [] if none."""
    root = Path(root)
    try:
        manifest = load_manifest(root)
    except DatasetError as e:
        return [str(e)]
    problems = []
    for entry in manifest.episodes:
        problems += _validate_episode(root / entry.name, entry, manifest.format)
    return problems


def _validate_episode(episode_dir: Path, entry: EpisodeEntry, fmt: DatasetFormat) -> list[str]:
    if entry.status != "completed":
        return [f"{episode_dir}: episode is not completed (status '{entry.status}'); run collect again to finish it"]
    problems = []
    try:
        info = read_episode_info(episode_dir)
        if info.frames != entry.frames:
            problems.append(f"{episode_dir / EPISODE_INFO_NAME}: {info.frames} frames, manifest says {entry.frames}")
    except DatasetError as e:
        problems.append(str(e))
    measurements = episode_dir / MEASUREMENTS_NAME
    records, bad_lines = scan_measurements(measurements)
    problems += [str(e) for e in bad_lines]
    if not bad_lines and len(records) != entry.frames:
        problems.append(f"{measurements}: {len(records)} frames, manifest says {entry.frames}")
    problems += _validate_images(episode_dir, fmt, [r["frame"] for r in records], check_strays=not bad_lines)
    return problems


def _validate_images(episode_dir: Path, fmt: DatasetFormat, frames: list[int], check_strays: bool) -> list[str]:
    """Decode every image of ``frames``; with ``check_strays``, also name image files of no frame."""
    problems, expected = [], set()
    for frame in frames:
        for modality, camera, path in fmt.frame_files(episode_dir, frame):
            expected.add(path)
            try:
                READERS[modality](path, (camera.height, camera.width))
            except DatasetError as e:
                problems.append(str(e))
    if not check_strays:  # with unreadable measurement lines, the files of those frames would be named too
        return problems
    for modality in fmt.modalities():
        folder = episode_dir / modality
        strays = sorted(p for p in folder.iterdir() if p not in expected) if folder.is_dir() else []
        problems += [f"{p}: file belongs to no frame in {MEASUREMENTS_NAME}" for p in strays]
    return problems
