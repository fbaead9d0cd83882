"""Prometheus metrics of one server (``/metrics``).

Contract: :class:`Metrics` owns a registry (its own per app, so several apps can live in one
process, e.g. in tests) with, per model and version: request latency, requests by status code,
queue time, batch size, items predicted (``rate()`` of it is items per second), model run time,
and validation failures. When ``PROMETHEUS_MULTIPROC_DIR`` is set (``helixserve serve
--workers N``), values are shared through that folder and :meth:`Metrics.render` aggregates every
worker; otherwise it renders this process's registry.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The server's metric families; see the module contract."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "helixserve_request_seconds",
            "Time to answer a request",
            ["route", "model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.requests = Counter(
            "helixserve_requests",
            "Requests answered",
            ["route", "model", "version", "code"],
            registry=r,
        )
        self.queue_seconds = Histogram(
            "helixserve_queue_seconds",
            "Time a request waited for its batch",
            ["model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.run_seconds = Histogram(
            "helixserve_batch_run_seconds",
            "Validate+encode+model time per batch",
            ["model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.batch_size = Histogram(
            "helixserve_batch_size",
            "Items per model call",
            ["model", "version"],
            buckets=BATCHES,
            registry=r,
        )
        self.items = Counter(
            "helixserve_items", "Items sent to a model", ["model", "version"], registry=r
        )
        self.validation_failures = Counter(
            "helixserve_validation_failures",
            "Inputs rejected by validation",
            ["model", "version"],
            registry=r,
        )

    def observer(self, name: str, version: int) -> object:
        """A batch observer for one model version (see :mod:`helixserve.runtime.batcher`)."""
        labels = (name, str(version))
        queue = self.queue_seconds.labels(*labels)
        run = self.run_seconds.labels(*labels)
        size = self.batch_size.labels(*labels)
        items = self.items.labels(*labels)

        def observe(batch_items: int, queued: float, ran: float) -> None:
            queue.observe(queued)
            run.observe(ran)
            size.observe(batch_items)
            items.inc(batch_items)

        return observe

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
