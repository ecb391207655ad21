"""The lab's side channels into a running federation: what clients hand the lab (the truth behind a captured
update, the insider's artifacts, node state), the per-round recorder, and the monitors fed each round."""
