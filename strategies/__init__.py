"""Flower server strategies of fl-privacy (Message API, subclasses of Flower's FedAvg)."""

from strategies.fedavg_warmup import FedAvgWithWarmup

__all__ = ["FedAvgWithWarmup"]
