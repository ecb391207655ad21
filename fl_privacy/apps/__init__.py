"""Flower's ServerApp and ClientApp (the Flower layer): client roles, node state, the server's round loop.

They receive typed settings and the lab's hooks; they never import the lab."""
