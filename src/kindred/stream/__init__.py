"""The partitioned batch log on NATS JetStream (ports.batch_log.BatchLog)."""

from kindred.stream.jetstream import JetStreamLog, LogOptions

__all__ = ["JetStreamLog", "LogOptions"]
