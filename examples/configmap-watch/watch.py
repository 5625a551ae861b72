"""Log each change of a labelled ConfigMap: the kubernetes Trigger's event carries the
event type and the object as the API server sent it."""


def handler(event, context):
    meta = event["object"]["metadata"]
    keys = sorted((event["object"].get("data") or {}).keys())
    print(f"{event['eventType']} ConfigMap {meta['namespace']}/{meta['name']}: keys {keys}")
    return {"eventType": event["eventType"], "name": meta["name"], "keys": keys}
