"""Defenses: DP-SGD with cumulative accounting, noise decay, adaptive clipping, update pruning and
suppress-privacy training (client side); central DP and the secure-aggregation view live in `strategies/`."""
