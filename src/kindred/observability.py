"""Prometheus metrics (one private registry per app) and structured JSON logs."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

import msgspec
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from kindred.domain.redact import redact_text
from kindred.ports.batch_log import Backlog

__all__ = ["PrometheusMetrics", "configure_logging"]

# Libraries whose INFO lines name request URLs (httpx logs every request it sends, with
# its query string and credentials): warnings and errors only.
_CHATTY = ("httpx", "httpcore")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PrometheusMetrics:
    def __init__(self) -> None:
        # `_created` series double the exposition and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches = Counter(
            "kindred_batches", "Batches by input and outcome", ["input", "status"], registry=r
        )
        self.events = Counter("kindred_events", "Events accepted", ["input"], registry=r)
        self.rejects = Counter(
            "kindred_rejects", "Batches refused, by reason", ["input", "reason"], registry=r
        )
        self.refused_data = Counter(
            "kindred_refused_data",
            "Parts of applied batches refused (guardrails, priority, conflicts), by reason",
            ["input", "reason"],
            registry=r,
        )
        self.group_size = Histogram(
            "kindred_commit_group_size",
            "Batches per commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.group_seconds = Histogram(
            "kindred_commit_seconds",
            "Time to apply and commit a group",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.request_seconds = Histogram(
            "kindred_request_seconds",
            "HTTP request latency by route",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.profiles_expired = Counter(
            "kindred_profiles_expired",
            "Profiles deleted by the lifetime sweep",
            registry=r,
        )
        self.profiles_deleted = Counter(
            "kindred_profiles_deleted",
            "Profiles (with those merged into them) erased by bulk deletion",
            registry=r,
        )
        self.expired_exits = Counter(
            "kindred_retention_exits",
            "Audience memberships ended by the lifetime sweep (sent as removals)",
            registry=r,
        )
        self.events_pruned = Counter(
            "kindred_retention_events_pruned",
            "Event log batches deleted past their account's data retention period",
            registry=r,
        )
        self.retention_recomputed = Counter(
            "kindred_retention_profiles_recomputed",
            "Profiles whose calculated attributes were computed again without pruned batches",
            registry=r,
        )
        self.attributes_expired = Counter(
            "kindred_attributes_expired",
            "Attribute values removed by the expiry sweep past their time to live (RET-4)",
            registry=r,
        )
        self.attribute_expiry_exits = Counter(
            "kindred_attribute_expiry_exits",
            "Audience memberships ended by the expiry sweep (sent as removals)",
            registry=r,
        )
        self.queue_depth = Gauge("kindred_writer_queue", "Batches waiting to commit", registry=r)
        self.forwarded = Counter(
            "kindred_forwarding",
            "Outbox rows (initial sync members) finished or failed, by connection and outcome",
            ["connection", "outcome"],
            registry=r,
        )
        self._batch_log(r)

    def _batch_log(self, r: CollectorRegistry) -> None:
        """The batch log of roles api and worker (docs/deployment.md)."""
        self.log_backlog_bytes = Gauge(
            "kindred_log_backlog_bytes", "Batch log bytes not yet applied and trimmed", registry=r
        )
        self.log_backlog_batches = Gauge(
            "kindred_log_backlog_batches", "Batches in the batch log not yet applied", registry=r
        )
        self.log_backlog_age = Gauge(
            "kindred_log_backlog_age_seconds", "Age of the oldest batch waiting", registry=r
        )
        self.log_lag = Gauge(
            "kindred_log_partition_lag_batches",
            "Batches waiting per partition (as the API last read the log)",
            ["partition"],
            registry=r,
        )
        self.log_refused = Counter(
            "kindred_log_backlog_full", "Batches answered 503: the backlog was full", registry=r
        )
        self.log_applied_batches = Counter(
            "kindred_log_applied", "Batch log records applied by this worker", registry=r
        )
        self.log_redeliveries = Counter(
            "kindred_log_redeliveries",
            "Batch log records read again and skipped: their partition had applied them",
            registry=r,
        )
        self._lag_seen: set[int] = set()
        self.log_held = Gauge(
            "kindred_log_partitions_held", "Partitions this worker holds", registry=r
        )

    def log_backlog(self, backlog: Backlog, age_s: float) -> None:
        self.log_backlog_bytes.set(backlog.bytes)
        self.log_backlog_batches.set(backlog.messages)
        self.log_backlog_age.set(age_s)
        # A partition the stream holds nothing of is absent from the figure: back to 0.
        for partition in self._lag_seen - backlog.per_partition.keys():
            self.log_lag.labels(str(partition)).set(0)
        for partition, count in backlog.per_partition.items():
            self.log_lag.labels(str(partition)).set(count)
        self._lag_seen |= backlog.per_partition.keys()

    def log_backlog_full(self) -> None:
        self.log_refused.inc()

    def log_applied(self, batches: int, redelivered: int) -> None:
        self.log_applied_batches.inc(batches - redelivered)
        if redelivered:
            self.log_redeliveries.inc(redelivered)

    def log_partitions_held(self, count: int) -> None:
        self.log_held.set(count)

    def delivery(self, connection: str, outcome: str, rows: int) -> None:
        """`outcome`: sent, retry, faulted or dead_letter; synced: members of an initial
        sync done (sent, or carried by their own rows)."""
        self.forwarded.labels(connection, outcome).inc(rows)

    def batch_done(self, input_name: str, status: str, events: int) -> None:
        self.batches.labels(input_name, status).inc()
        if events:
            self.events.labels(input_name).inc(events)

    def notes(self, input_name: str, reasons: Sequence[str]) -> None:
        for reason in reasons:
            self.refused_data.labels(input_name, reason).inc()

    def batch_refused(self, input_name: str, reason: str) -> None:
        self.rejects.labels(input_name, reason).inc()

    def group_committed(self, size: int, seconds: float) -> None:
        self.group_size.observe(size)
        self.group_seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _JsonFormatter(logging.Formatter):
    _encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._encoder.encode(entry).decode()


class _Redacting(logging.Formatter):
    """Every line as its formatter writes it, with URL passwords, secret query parameters
    and `password=` settings masked (SEC-3: secrets are never logged)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self._inner.format(record))


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        _JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.setFormatter(_Redacting(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
