"""Runs on a schedule. The event is what every fire sends: the Trigger's name, the time
the fire is for, and the Trigger's ``payload`` under its own key."""

import datetime


def handler(event, context):
    team = event.get("payload", {}).get("team", "everyone")
    message = f"nightly report for {team}"
    context.logger.info("%s (the fire of %s)", message, event.get("triggerTime"))
    return {
        "message": message,
        "triggerTime": event.get("triggerTime"),
        "reportedAt": datetime.datetime.now(datetime.UTC).isoformat(),
    }
