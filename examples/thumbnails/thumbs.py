"""Thumbnails: an image lands in a bucket under in/, a 128-px thumbnail lands under thumbs/.

The seed's event-driven pipeline. The Trigger's objectStorage source turns each bucket
notification into one invocation with S3's event (Records); the key arrives as S3 sends
it, URL-encoded (a space is '+'), so it is decoded once, as on Lambda.
boto3 finds the storage from the environment (AWS_ENDPOINT_URL_S3, region, credentials):
the local S3 in dev mode, MinIO or AWS S3 in a cluster.
"""

import io
from urllib.parse import unquote_plus

import boto3
from PIL import Image

SIZE = (128, 128)
s3 = boto3.client("s3")


def handler(event, context):
    made = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        if not key.startswith("in/"):
            continue
        source = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with Image.open(io.BytesIO(source)) as image:
            image.thumbnail(SIZE)
            thumbnail = io.BytesIO()
            image.convert("RGB").save(thumbnail, format="JPEG", quality=85)
        target = "thumbs/" + key.removeprefix("in/")
        s3.put_object(
            Bucket=bucket, Key=target, Body=thumbnail.getvalue(), ContentType="image/jpeg"
        )
        context.logger.info("made %s (%dx%d) from %s", target, *image.size, key)
        made.append(target)
    return {"thumbnails": made}
