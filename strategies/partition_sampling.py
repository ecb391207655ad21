"""Reproducible client selection: learn each node's partition id, sample and order by it.

Flower's node ids are random per run, so sampling or summing in node-id order is not
reproducible. Before round 1 the server asks every node for its partition id once (a QUERY
message), then samples by partition id with a seeded generator and aggregates replies in
partition order, so the same seed gives the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fl_privacy.protocol import PARTITION_ID, PARTITION_RECORD, QUERY, sample_size
from fl_privacy.seeding import Stream, stream_rng


def discover_partitions(grid: Grid, num_nodes: int, timeout: float = 600.0) -> dict[int, int]:
    """Map node id -> partition id for all `num_nodes` nodes (waits until they are connected)."""
    deadline = time.monotonic() + timeout
    node_ids = list(grid.get_node_ids())
    while len(node_ids) < num_nodes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(node_ids)} of {num_nodes} nodes connected")
        time.sleep(0.2)
        node_ids = list(grid.get_node_ids())
    query = RecordDict({"config": ConfigRecord({QUERY: PARTITION_ID})})
    messages = [Message(content=query, message_type=MessageType.QUERY, dst_node_id=node)
                for node in node_ids]
    mapping = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
        partition_id = reply.content.metric_records[PARTITION_RECORD][PARTITION_ID]
        mapping[reply.metadata.src_node_id] = int(cast(int, partition_id))
    return mapping


def sample_by_partition(partition_of: dict[int, int], fraction: float, minimum: int,
                        seed: int, server_round: int) -> list[int]:
    """Node ids of a seeded sample of partitions (all nodes when fraction is 1)."""
    nodes = sorted(partition_of, key=partition_of.__getitem__)
    size = sample_size(len(nodes), fraction, minimum)
    if size == len(nodes):
        return nodes
    chosen = stream_rng(seed, Stream.CLIENT_SAMPLING, server_round).choice(len(nodes), size, replace=False)
    return [nodes[i] for i in sorted(chosen)]


def in_partition_order(replies: Iterable[Message], partition_of: dict[int, int]) -> list[Message]:
    """Replies sorted by the sender's partition id, so sums are added in a fixed order."""
    return sorted(replies, key=lambda m: partition_of.get(m.metadata.src_node_id, -1))
