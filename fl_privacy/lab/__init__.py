"""The lab: the experiment harness, the only code that holds both the truth and what attackers produce.

It builds the federation, runs the Flower simulation with its side channels (`side_channels`) and monitors,
and runs the post-run pipelines (attack step, then scoring against the truth). Entry points (`run`, `cli`)
call it with typed settings.
"""
