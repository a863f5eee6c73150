"""The scale-out roles wired (docs/deployment.md): role api's appender, role worker's
partition worker, both on the batch log (NATS JetStream) and PostgreSQL's partition
leases. The composition root calls it; nothing else names these adapters."""

from __future__ import annotations

import os
import socket
import uuid

from kindred.config import Settings
from kindred.domain.errors import ConfigError
from kindred.domain.tenancy import Tenancy
from kindred.observability import PrometheusMetrics
from kindred.ports import Clock, Store
from kindred.ports.batch_log import BatchLog, PartitionLeases
from kindred.services.partitions.appender import BacklogLimits, LogAppender
from kindred.services.partitions.worker import PartitionWorker, WorkerOptions
from kindred.services.writes.group_writer import GroupWriter

__all__ = ["batch_log", "partition_leases", "process_name", "roles"]


def roles(
    settings: Settings,
    store: Store,
    *,
    tenancy: Tenancy,
    clock: Clock,
    metrics: PrometheusMetrics,
    writer: GroupWriter,
) -> tuple[LogAppender | None, PartitionWorker | None]:
    """Role api appends batches to the batch log; role worker applies its partitions;
    role all does neither (batches go to the writer, as they always did)."""
    role, stream = settings.server.role, settings.stream
    if role == "api":
        limits = BacklogLimits(
            max_bytes=stream.max_backlog_bytes,
            max_age_s=stream.max_backlog_age_s,
            retry_after_s=stream.retry_after_s,
        )
        return LogAppender(batch_log(settings), limits, clock, metrics), None
    if role == "worker":
        options = WorkerOptions(
            owner=process_name(),
            partitions=stream.partitions,
            lease_s=stream.lease_s,
            page=settings.store.group_max,
        )
        worker = PartitionWorker(
            lambda: batch_log(settings),
            partition_leases(store),
            submit=writer.submit_async,
            inputs=tenancy.input_named,
            metrics=metrics,
            options=options,
        )
        return None, worker
    return None, None


def batch_log(settings: Settings) -> BatchLog:
    from kindred.stream import JetStreamLog, LogOptions  # noqa: PLC0415 - roles api, worker

    stream = settings.stream
    return JetStreamLog(
        LogOptions(
            servers=tuple(u.strip() for u in stream.url.split(",") if u.strip()),
            stream=stream.name,
            subject_prefix=stream.subject_prefix,
            partitions=stream.partitions,
            replicas=stream.replicas,
            append_deadline_s=stream.append_deadline_s,
        )
    )


def partition_leases(store: Store) -> PartitionLeases:
    from kindred.storage.postgres import PostgresStore  # noqa: PLC0415 - chosen by config

    if not isinstance(store, PostgresStore):
        raise ConfigError("the batch log's partitions are kept in PostgreSQL (store.url)")
    return store


def process_name() -> str:
    """Which process holds a lease; unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
