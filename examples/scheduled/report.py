"""Runs on a schedule: the event is the Trigger's payload."""

import datetime


def handler(event, context):
    context.logger.info("nightly report for %s", event.get("team", "everyone"))
    return {"reportedAt": datetime.datetime.now(datetime.UTC).isoformat(), "event": event}
