"""Training augmentation: one albumentations pipeline that moves image, class mask and boxes together.

Photometric (brightness/contrast, hue/saturation, gamma, blur, noise, JPEG), weather (rain, sun flare, shadow
and, rarer still, fog: the expensive ones), small affine jitter and an optional horizontal flip. A flip is
reported back (``flipped``) so the dataset can mirror the policy targets (see ``perception.dataset``).
Each call is seeded, so a sample's augmentation depends only on (seed, epoch, index), not on workers: one
NumPy and one Python generator per call, shared by every transform, so that the transforms draw independently
(albumentations' ``set_random_seed`` would give each transform its own generator with the same seed, and
they would all fire on the same samples).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
from drivestack.perception.classes import IGNORE_INDEX


@dataclass
class AugmentConfig:
    """Probabilities (0 = off) and ranges of the training augmentations."""

    enabled: bool = True  # (bool) augment the training split (val/test are never augmented)
    hflip: float = 0.5  # (float) probability of a horizontal flip (policy targets are mirrored with it)
    brightness_contrast: float = 0.5  # (float) probability of a brightness/contrast change
    brightness: float = 0.25  # (float) brightness change range, +-
    contrast: float = 0.25  # (float) contrast change range, +-
    hue_saturation: float = 0.3  # (float) probability of a hue/saturation/value shift
    gamma: float = 0.2  # (float) probability of a gamma change (80..120)
    blur: float = 0.1  # (float) probability of a Gaussian or motion blur
    noise: float = 0.1  # (float) probability of Gaussian noise (per pixel, the same on the three channels)
    jpeg: float = 0.1  # (float) probability of JPEG re-compression (quality 40..90)
    weather: float = 0.03  # (float) probability of each of rain, sun flare and shadow
    fog: float = 0.01  # (float) probability of fog (the most expensive transform, ~8 ms at 320x160)
    affine: float = 0.3  # (float) probability of the affine jitter
    scale: tuple[float, float] = (0.9, 1.1)  # (float) affine zoom range
    translate: float = 0.03  # (float) affine shift, fraction of the image size, +-
    rotate: float = 2.0  # (deg) affine rotation, +-
    min_box_visibility: float = 0.3  # (float) a box keeps at least this fraction of its area after a shift, or is dropped

    def __post_init__(self) -> None:
        for name in ("hflip", "brightness_contrast", "hue_saturation", "gamma", "blur", "noise", "jpeg", "weather",
                     "fog", "affine", "min_box_visibility"):  # fmt: skip
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {getattr(self, name)}")


def build_pipeline(config: AugmentConfig) -> A.Compose:
    """The albumentations pipeline (pascal_voc boxes with ``labels``; masks filled with IGNORE_INDEX).

    Boxes must lie inside the image with a positive size (``DrivingDataset.boxes`` ensures it): the
    pipeline does not filter invalid input boxes, a check that cost 50 us a sample. Noise is one value per
    pixel for the three channels (per-channel noise costs 2.5x more). Fog is dense (coefficient 0.6-0.9): at
    320x160 a coefficient of 0.1-0.3 draws 1-3 px particles that change the image by 0.5 grey levels on
    average, in 30-40 ms; this range gives visible fog banks in about 8 ms.
    """
    weather = config.weather
    transforms = [
        A.HorizontalFlip(p=config.hflip),
        A.Affine(scale=config.scale, translate_percent=(-config.translate, config.translate),
                 rotate=(-config.rotate, config.rotate), interpolation=cv2.INTER_LINEAR,
                 mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT, fill=0,
                 fill_mask=IGNORE_INDEX, p=config.affine),
        A.RandomBrightnessContrast(brightness_limit=config.brightness, contrast_limit=config.contrast,
                                   p=config.brightness_contrast),
        A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=20, val_shift_limit=10, p=config.hue_saturation),
        A.RandomGamma(gamma_limit=(80, 120), p=config.gamma),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 5))], p=config.blur),
        A.GaussNoise(std_range=(0.02, 0.06), per_channel=False, p=config.noise),
        A.ImageCompression(quality_range=(40, 90), p=config.jpeg),
        A.RandomRain(rain_type="drizzle", drop_width=1, blur_value=3, brightness_coefficient=0.8, p=weather),
        A.RandomFog(fog_coef_range=(0.6, 0.9), alpha_coef=0.08, p=config.fog),
        A.RandomSunFlare(flare_roi=(0.0, 0.0, 1.0, 0.4), src_radius=80, num_flare_circles_range=(3, 6), p=weather),
        A.RandomShadow(shadow_roi=(0.0, 0.5, 1.0, 1.0), num_shadows_limit=(1, 2), p=weather),
    ]  # fmt: skip
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=config.min_box_visibility,
                               clip=True, filter_invalid_bboxes=False, check_each_transform=False)  # fmt: skip
    return A.Compose(transforms, bbox_params=bbox_params, save_applied_params=True)


@dataclass
class Augmented:
    """One augmented sample."""

    image: np.ndarray  # HxWx3 uint8 RGB
    mask: np.ndarray  # HxW uint8 class ids
    boxes: np.ndarray  # (N,4) float32 x1,y1,x2,y2 pixels
    labels: np.ndarray  # (N,) int64
    flipped: bool  # mirrored left-right


class Augment:
    """Callable wrapper of the pipeline: seeded per call (one generator pair shared by all transforms),
    reports whether the sample was flipped."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self.pipeline = build_pipeline(config)

    def __call__(self, image: np.ndarray, mask: np.ndarray, boxes: np.ndarray, labels: np.ndarray, seed: int) -> Augmented:
        self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
        out = self.pipeline(image=image, mask=mask, bboxes=boxes.reshape(-1, 4), labels=labels)
        flipped = any(name == "HorizontalFlip" for name, _ in out["applied_transforms"])
        return Augmented(out["image"], out["mask"], np.asarray(out["bboxes"], np.float32).reshape(-1, 4),
                         np.asarray(out["labels"], np.int64).reshape(-1), flipped)  # fmt: skip
