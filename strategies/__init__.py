"""Flower server strategies of fl-privacy (Message API, subclasses of Flower's FedAvg).

They import Flower, torch and the package's leaves only (data records, models, training, protocol,
results, seeding), never the lab or the commands."""

from fl_privacy.protocol import CaptureSchedule
from strategies.central_dp import AccountedServerSideClipping
from strategies.fedavg_warmup import FedAvgWithWarmup
from strategies.gradient_capture import AGGREGATE, GradientCapture
from strategies.malicious_imprint import ImprintCapture

# `strategy.name` -> strategy class (the server app builds it, the config validator checks the name)
STRATEGIES = {"fedavg_warmup": FedAvgWithWarmup, "gradient_capture": GradientCapture}

__all__ = ["AGGREGATE", "STRATEGIES", "AccountedServerSideClipping", "CaptureSchedule", "FedAvgWithWarmup",
           "GradientCapture", "ImprintCapture"]
