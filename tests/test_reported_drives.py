"""The route records of the drives the README reports (docs/drives/) hold every route of their suite, and the
README's figure for each is the mean of its records."""

from pathlib import Path

import pytest
from drivestack.planning.evaluation.failures import read_results
from drivestack.planning.evaluation.metrics import summarize
from drivestack.planning.evaluation.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
DRIVES = sorted((ROOT / "docs" / "drives" / "generated_test").glob("*/"))


def test_there_is_a_reported_drive():
    assert DRIVES, "docs/drives/generated_test/ holds no drive"


@pytest.mark.parametrize("drive", DRIVES, ids=[d.name for d in DRIVES])
def test_a_reported_drive_holds_every_route_and_gives_the_readme_figure(drive: Path):
    results = read_results(drive)
    suite = load_suite(ROOT / "configs" / "routes" / "generated_test.yaml")
    assert sorted(r.name for r in results) == sorted(r.name for r in suite.routes)
    assert (drive / "driver.json").is_file()
    summary = summarize(results)  # as `drivestack drive` summarises the drive
    low, high = summary.ci["driving_score"]
    figure = f"{summary.driving_score:.1f} (95 % CI {low:.1f}–{high:.1f})"
    assert figure in (ROOT / "README.md").read_text(), f"README does not state {drive.name}'s figure {figure}"
