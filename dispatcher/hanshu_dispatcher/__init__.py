"""Hanshu dispatcher: durable async invocations on NATS JetStream."""
