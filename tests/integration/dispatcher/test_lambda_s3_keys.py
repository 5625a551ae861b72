"""S3 object keys reach Lambda code as S3 sends them: a real moto S3 server notifies the
gateway through SNS (dev mode wires it as AWS would), and the AWS developer guide's own S3
sample, unmodified, decodes each key once with ``unquote_plus``, fetches the object and
writes an encrypted copy. Keys with '+', a space, '%' and non-ASCII letters: decoded twice,
each names an object that does not exist. (Source and commit: lambda_samples/README.md.)"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from hanshu_cli.local_s3 import LocalS3
from pypdf import PdfReader, PdfWriter

from tests.support.dev_platform import function
from tests.support.helpers import eventually
from tests.support.object_storage import bucket_trigger

SAMPLE = Path(__file__).resolve().parent.parent / "lambda_samples" / "lambda_function.py"
S3_LINE = re.compile(r"object storage \(S3\) at (http://127\.0\.0\.1:\d+), bucket docs")
KEYS = {
    "in/dog+cat.pdf": "in/dog+cat_encrypted.pdf",  # S3 sends in/dog%2Bcat.pdf
    "in/my report.pdf": "in/my report_encrypted.pdf",  # ... in/my+report.pdf
    "in/100%41.pdf": "in/100%41_encrypted.pdf",  # ... in/100%2541.pdf
    "in/naïve 日本.pdf": "in/naïve 日本_encrypted.pdf",
}


def a_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_the_aws_s3_sample_finds_objects_whose_keys_need_encoding(platform_factory):
    platform = platform_factory(
        [
            function(
                "encrypt-pdf",
                handler="lambda_function.lambda_handler",
                code={"inline": {"lambda_function.py": SAMPLE.read_text()}},
            ),
            bucket_trigger(
                "docs-uploaded",
                "encrypt-pdf",
                bucket="docs",
                events=["s3:ObjectCreated:*"],
                # The filter sees the decoded key: "in/" is not "in%2F".
                filter={"prefix": "in/", "suffix": ".pdf"},
            ),
        ]
    )

    def endpoint() -> str | None:
        found = S3_LINE.search(platform.logs())
        return found.group(1) if found else None

    url = await eventually(endpoint, timeout=30, message="dev mode printed its S3 server")
    s3: Any = LocalS3(port=int(url.rsplit(":", 1)[1])).client("s3")
    s3.create_bucket(Bucket="docs-encrypted")  # where the sample writes
    pdf = a_pdf()
    for key in KEYS:
        s3.put_object(Bucket="docs", Key=key, Body=pdf)
    s3.put_object(Bucket="docs", Key="out/skip+me.pdf", Body=pdf)  # outside the prefix

    def encrypted() -> bool:
        listed = s3.list_objects_v2(Bucket="docs-encrypted").get("Contents", [])
        # Seen as the last value when it times out: which copies were made.
        assert {item["Key"] for item in listed} == set(KEYS.values()), listed
        return True

    await eventually(encrypted, timeout=60, interval=0.2, message="an encrypted copy of each")
    body = s3.get_object(Bucket="docs-encrypted", Key="in/dog+cat_encrypted.pdf")["Body"].read()
    assert PdfReader(io.BytesIO(body)).is_encrypted
