"""Track vehicles and pedestrians in the detector's boxes and score the tracks against the embedded simulator's
truth on seeded routes in unseen towns: HOTA, MOTA, IDF1, ID switches per km, range and speed errors, tracker
milliseconds per frame (docs/tracking.md). ``bench=true`` only times the tracker."""

from __future__ import annotations

from drivestack.planning.evaluation.track import TrackConfig, track

CONFIG_CLASS = TrackConfig
DEFAULT_CONFIG = "track.yaml"


def run(config: TrackConfig) -> int:
    return track(config)
