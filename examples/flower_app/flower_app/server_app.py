"""flower-app: the ServerApp (the template's FedAvg, wrapped by fl-privacy's `capture_updates`)."""

from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fl_privacy.capture import capture_updates
from flower_app.task import app_config, build

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """FedAvg for `num-server-rounds`, every training reply recorded under `capture-dir`."""
    config = app_config(context.run_config)
    model = build(config["model"])
    strategy = FedAvg(fraction_train=config["fraction-train"])
    capture_dir = Path(config["capture-dir"]).resolve()
    result = capture_updates(strategy, capture_dir).start(
        grid=grid, initial_arrays=ArrayRecord(model.state_dict()),
        train_config=ConfigRecord({"lr": config["lr"]}), num_rounds=config["num-server-rounds"])
    model.load_state_dict(result.arrays.to_torch_state_dict())
    print(f"final model trained; captures in {capture_dir}")
