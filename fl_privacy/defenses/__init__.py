"""Defenses that change how a model is trained so that it leaks less about its training data."""
