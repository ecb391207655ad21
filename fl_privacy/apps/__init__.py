"""Flower ServerApp and ClientApp built from an experiment config."""
