"""fl-privacy: simulate federated learning with Flower and measure what leaks."""

__version__ = "0.1.0"
