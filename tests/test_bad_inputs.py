"""Every bad input a user can give the command line: one line on stderr naming the file, key, route or value,
exit code 2, no traceback, and nothing already recorded changed. One row per input."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from drivestack.cli import main
from drivestack.common.io import file_digest
from drivestack.common.paths import MODEL_DIR
from perception_helpers import recorded_dataset, write_tiny_suite

ROUTE = {"name": "r0", "town": 2000, "seed": 1, "length": 40.0}
FINISHED = {"status": "finished", "name": "tiny_route", "route_length": 40.0, "completion": 100.0, "infractions": {},
            "outside_lanes_pct": 0.0, "outcome": "completed", "duration_s": 8.0, "distance_m": 40.0}  # fmt: skip


def _suite(path: Path, *routes: dict, extra: str = "") -> str:
    lines = ["name: bad", extra, "routes:"] + [f"  - {json.dumps(r)}" for r in routes]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Broken and foreign files, read-only folders, and folders with work already recorded in them."""
    tmp = tmp_path_factory.mktemp("bad")
    f: dict[str, str] = {"tmp": str(tmp), "missing": str(tmp / "gone.pt")}
    (tmp / "random.pt").write_bytes(os.urandom(4096))
    torch.save({"weight": torch.zeros(3)}, tmp / "state_dict.pt")
    torch.save({"model": "not a spec", "state_dict": {}}, tmp / "no_builder.pt")
    shipped = MODEL_DIR / "driving.pt"
    (tmp / "truncated.pt").write_bytes(shipped.read_bytes()[: shipped.stat().st_size // 2])
    shutil.copy(MODEL_DIR / "driving_fused_int8.onnx", tmp / "graph.onnx")
    (tmp / "text.onnx").write_text("not a graph")
    (tmp / "bad.yaml").write_text("agent: [policy\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    f.update({k: str(tmp / n) for k, n in [("random", "random.pt"), ("state_dict", "state_dict.pt"), ("no_builder", "no_builder.pt"),
                                           ("truncated", "truncated.pt"), ("onnx", "graph.onnx"), ("text_onnx", "text.onnx"),
                                           ("bad_yaml", "bad.yaml"), ("list_yaml", "list.yaml")]})  # fmt: skip
    f["suite"] = str(write_tiny_suite(tmp / "tiny.yaml"))
    f["town_abc"] = _suite(tmp / "abc.yaml", {**ROUTE, "town": "abc"})
    f["town_neg"] = _suite(tmp / "neg.yaml", {**ROUTE, "town": -5})
    f["seed_neg"] = _suite(tmp / "seed.yaml", {**ROUTE, "seed": -1})
    f["route_key"] = _suite(tmp / "key.yaml", {**ROUTE, "lenght": 40.0})
    f["twice"] = _suite(tmp / "twice.yaml", ROUTE, ROUTE)
    f["no_routes"] = _suite(tmp / "empty.yaml")
    f["traffic_key"] = _suite(tmp / "traffic.yaml", {**ROUTE, "traffic": {"cars": 3}})
    f["length0"] = _suite(tmp / "length.yaml", {**ROUTE, "length": 0})
    f["unwritable"] = str(tmp / "bad.yaml" / "out")  # a folder that cannot be made, even by root (its parent is a file)
    done = tmp / "driven"  # an expert's results folder with one finished route
    (done / "routes").mkdir(parents=True)
    (done / "driver.json").write_text(json.dumps({"agent": "expert", "suite": f["suite"]}))
    (done / "routes" / "tiny_route.json").write_text(json.dumps(FINISHED))
    f["driven"] = str(done)
    data = tmp / "data"
    shutil.copytree(recorded_dataset(), data)
    f["data"] = str(data)
    broken = tmp / "broken_data"
    shutil.copytree(recorded_dataset(), broken)
    png = sorted(broken.glob("town000_*/semantic/*.png"))[0]  # a label the training reads
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    f.update(broken=str(broken), png=str(png.relative_to(broken)))
    f["closed_port"] = str(_closed_port())
    return f


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TINY_DATA = "data.train_towns=[0,1] data.val_towns=[2] data.test_towns=[] data.cache=false train.batch_size=4"

# (args with {placeholders} from `files`, what the line must name: one string, or a tuple of strings it must all hold)
CASES = [
    # keys and values
    ("bench-sim steps=ten", "'steps' must be an integer"),
    ("drive agnet=policy", "unknown key 'agnet'"),
    ("drive agent=policy model={random} out={tmp}/d", "engine=torch"),
    ("drive agent=robot", "'agent' must be one of"),
    ("drive engine=tensorrt", "'engine' must be one of"),
    ("collect sim.backend=unreal", "'sim.backend' must be one of"),
    ("collect workers=0", "workers"),
    ("train train.lr=-1", "lr"),
    ("show every=0", "every, scale and max_steps must be >= 1"),
    ("expert routes=0", "routes and workers must be >= 1"),
    ("expert routes=-1", "routes and workers must be >= 1"),
    ("model-info model.backbone=resnet9000", "resnet9000"),
    ("drvie", "did you mean 'drive'"),
    # config files
    ("drive config={missing} out={tmp}/d", "{missing}"),
    ("drive config={bad_yaml} out={tmp}/d", "{bad_yaml}"),
    ("drive config={list_yaml} out={tmp}/d", "{list_yaml}"),
    # model files
    ("drive agent=policy engine=torch model={missing} out={tmp}/d", "{missing}"),
    ("drive agent=policy engine=torch model={random} out={tmp}/d", "{random}"),
    ("drive agent=policy engine=torch model={state_dict} out={tmp}/d", "{state_dict}"),
    ("drive agent=policy engine=torch model={no_builder} out={tmp}/d", "{no_builder}"),
    ("drive agent=policy engine=torch model={truncated} out={tmp}/d", "{truncated}"),
    ("export checkpoint={onnx}", "{onnx}"),
    ("val val.checkpoint={onnx}", "{onnx}"),
    ("val val.checkpoint={state_dict}", "{state_dict}"),
    ("drive agent=policy engine=onnx onnx_model={random} out={tmp}/d", "{random}"),
    ("drive agent=policy engine=onnx onnx_model={text_onnx} out={tmp}/d", "{text_onnx}"),
    ("export checkpoint={missing}", "{missing}"),
    ("export checkpoint={truncated}", "{truncated}"),
    ("export checkpoint={state_dict}", "{state_dict}"),
    ("val val.checkpoint={missing}", "{missing}"),
    ("val val.checkpoint={random}", "{random}"),
    ("soup checkpoints=[{missing}]", "{missing}"),
    ("soup checkpoints=[{random},{random}]", "{random}"),
    ("package checkpoint={missing}", "{missing}"),
    ("probe model={missing}", "{missing}"),
    ("val-onnx models=[{missing}]", "{missing}"),
    ("dagger model={missing} out={tmp}/dagger", "{missing}"),
    # route suites and routes
    ("drive suite={missing} out={tmp}/d", "{missing}"),
    ("drive suite={town_abc} out={tmp}/d", ("{town_abc}", "route 'r0'", "town")),
    ("drive suite={town_neg} out={tmp}/d", ("{town_neg}", "route 'r0'", "town")),
    ("drive suite={seed_neg} out={tmp}/d", ("{seed_neg}", "route 'r0'", "seed")),
    ("drive suite={route_key} out={tmp}/d", ("{route_key}", "lenght")),
    ("drive suite={twice} out={tmp}/d", "{twice}"),
    ("drive suite={no_routes} out={tmp}/d", "{no_routes}"),
    ("drive suite={traffic_key} out={tmp}/d", ("{traffic_key}", "route 'r0'", "cars")),
    ("drive suite={length0} out={tmp}/d", ("{length0}", "route 'r0'", "length")),
    ("drive agent=policy suite={suite} routes=[nope] out={tmp}/d", "routes ['nope'] are not in suite 'tiny'"),
    # output folders, and folders already holding work
    ("drive suite={suite} out={unwritable}", "{unwritable}"),
    ("show out={unwritable}", "{unwritable}"),
    ("collect out={unwritable}", "{unwritable}"),
    ("expert out={unwritable}", "{unwritable}"),
    ("drive agent=policy suite={suite} out={driven}", "{driven}"),
    ("compare {driven} {missing}", "{missing}"),
    # data sets
    ("validate {missing}", "{missing}"),
    ("bench-loader data.root={tmp}", "{tmp}/manifest.json"),
    ("look data.root={missing}", "{missing}"),
    (f"train data.root={{broken}} {TINY_DATA} train.out={{tmp}}/train train.workers=0", "{png}"),
    (f"train data.root={{broken}} {TINY_DATA} train.out={{tmp}}/train train.workers=1", "{png}"),
    ("train-policy perception={missing}", "{missing}"),
    # simulators
    ("drive suite={suite} sim.backend=carla sim.carla.host=127.0.0.1 sim.carla.port={closed_port} sim.carla.timeout_s=2 out={tmp}/d", "127.0.0.1:{closed_port}"),
    ("show sim.backend=carla", "sim.backend"),
    ("drive suite={suite} sim.backend=carla sim.carla.weather=Blizzard out={tmp}/d", ("sim.carla.weather", "Blizzard")),
]


def _digests(folder: str) -> dict[str, str]:
    return {str(p): file_digest(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, named", CASES, ids=[c[0][:60] for c in CASES])
def test_bad_input_is_one_line(files, capsys, args, named):
    recorded = _digests(files["driven"])
    status = main([a.format(**files) for a in args.split()])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    said = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # what is not a progress bar
    assert "Traceback" not in err and (len(said) == 1 or args == "drvie"), err  # drvie: the line, then the verb list
    assert all(n.format(**files) in said[0] for n in ((named,) if isinstance(named, str) else named)), err
    assert _digests(files["driven"]) == recorded


def test_an_endpoint_that_is_not_carla_is_one_line(files, tmp_path):
    """A port that accepts the connection but does not speak CARLA: the client would abort the process."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    threading.Thread(target=lambda: [server.accept() for _ in range(4)], daemon=True).start()
    proc = subprocess.run([sys.executable, "-m", "drivestack.cli", "drive", f"suite={files['suite']}", "sim.backend=carla",
                           "sim.carla.host=127.0.0.1", f"sim.carla.port={port}", "sim.carla.timeout_s=2", f"out={tmp_path / 'out'}"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    server.close()
    assert proc.returncode == 2, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.strip() and "%|" not in line]
    assert len(said) == 1 and f"127.0.0.1:{port}" in said[0], proc.stderr


def test_the_shipped_models_perception_evaluates(files, capsys):
    """`val val.checkpoint=models/driving.pt`: the driving model's perception weights are evaluated as they are."""
    args = ["val", f"val.checkpoint={MODEL_DIR / 'driving.pt'}", f"data.root={files['data']}", *TINY_DATA.split(),
            "val.split=val", f"val.out={files['tmp']}/val", "val.render=1", "val.latency_runs=2"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    metrics = json.loads((Path(files["tmp"]) / "val" / "metrics.json").read_text())
    assert metrics["iou"]["road"] > 0.8 and metrics["iou"]["sky"] > 0.8, metrics["iou"]  # trained weights, not fresh ones



def test_help_needs_no_library():
    """`drivestack --help` and `drivestack <verb> --help` answer without importing torch (seconds of imports):
    every verb on its own line, a verb's keys from its defaults file."""
    code = ("import sys; from drivestack.cli import main, VERBS; main(['--help']); main(['drive', '--help']); "
            "print('torch imported' if 'torch' in sys.modules else 'no torch')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().endswith("no torch"), out
    from drivestack.cli import VERBS

    assert all(any(line.split()[:1] == [verb] for line in out.splitlines()) for verb in VERBS)
    assert "onnx_model:" in out  # drive's defaults file
