"""Where a run executes: Ray (kept across a sweep), Flower's simulation engine, telemetry,\ntorch threads.

Importing this package imports nothing heavy: `telemetry` must be importable before Flower is."""
