"""Flower server strategies of fl-privacy (Message API, subclasses of Flower's FedAvg)."""

from strategies.fedavg_warmup import FedAvgWithWarmup
from strategies.gradient_capture import CaptureSchedule, GradientCapture

# `strategy.name` -> strategy class (the server app builds it, the config validator checks the name)
STRATEGIES = {"fedavg_warmup": FedAvgWithWarmup, "gradient_capture": GradientCapture}

__all__ = ["STRATEGIES", "CaptureSchedule", "FedAvgWithWarmup", "GradientCapture"]
