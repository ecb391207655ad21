"""Run flower-app in process with `flwr.simulation.run_simulation` (what `flwr run .` does, from a script).

    python run_simulation.py --out /tmp/audit_cnn --model cnn
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # read once, when flwr is imported
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the capture folder")
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--supernodes", type=int, default=4)
    args = parser.parse_args()

    import flower_app.client_app as client
    import flower_app.server_app as server
    from flwr.simulation import run_simulation

    # run_simulation takes no run config: the apps read these (task.app_config), in Ray's workers too
    os.environ.update({"FLOWER_APP_MODEL": args.model, "FLOWER_APP_CAPTURE_DIR": str(args.out.resolve()),
                       "FLOWER_APP_NUM_SERVER_ROUNDS": str(args.rounds)})
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent),
                                                os.environ.get("PYTHONPATH", "")])
    run_simulation(server_app=server.app, client_app=client.app, num_supernodes=args.supernodes,
                   backend_config={"client_resources": {"num_cpus": 1},
                                   "init_args": {"include_dashboard": False, "num_cpus": 2,
                                                 "_node_ip_address": "127.0.0.1"}})


if __name__ == "__main__":
    main()
