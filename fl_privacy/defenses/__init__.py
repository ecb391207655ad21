"""Defenses: DP-SGD with cumulative accounting, noise decay, adaptive clipping, update pruning and
suppress-privacy training (client side); central DP and the secure-aggregation view live in `strategies/`;
PAR-GAN (one generator, discriminators on disjoint partitions) in `par_gan`."""
