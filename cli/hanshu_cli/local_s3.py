"""A real S3 server with bucket notifications on loopback, for the developer mode and
tests: moto's server (PyPI ``moto[server]``) serving S3 and SNS in one process.

A bucket's notifications go the way AWS sends them to an HTTP endpoint: S3 publishes to an
SNS topic, and SNS POSTs each message to the Trigger's notification URL on the gateway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .local_platform import free_port
from .local_servers import ended_with_parent, server_binary, stop_server, wait_listening

REGION = "us-east-1"
# moto accepts any credentials; boto3 needs some.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def moto_server_binary() -> str:
    return server_binary("moto_server", "pip install 'moto[server]'")


@dataclass
class LocalS3:
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_dir: str = ""
    # A log folder we made is ours to remove when the server stops; one given is not.
    _owns_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a Function needs for boto3 to use this server unchanged."""
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ENDPOINT_URL_SNS": self.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            **CREDENTIALS,
        }

    def start(self, timeout: float = 30.0) -> LocalS3:
        self.port = self.port or free_port()
        if not self.log_dir:
            self.log_dir, self._owns_dir = tempfile.mkdtemp(prefix="hanshu-s3-"), True
        log_path = Path(self.log_dir) / "moto.log"
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [moto_server_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **CREDENTIALS},
                # Its own process group: Ctrl-C in the terminal stops hanshu dev, which
                # stops this server after what uses it (never before, as the signal would).
                start_new_session=True,
                preexec_fn=ended_with_parent(),
            )
        wait_listening(self.process, self.port, log_path, "moto_server", timeout)
        return self

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def notify(
        self,
        bucket: str,
        endpoint: str,
        events: Sequence[str],
        prefix: str = "",
        suffix: str = "",
    ) -> None:
        """Create ``bucket`` if needed and send its notifications to ``endpoint`` through
        an SNS topic, as on AWS."""
        s3, sns = self.client("s3"), self.client("sns")
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        topic = sns.create_topic(Name=f"hanshu-{bucket}".replace(".", "-"))["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)
        rules = [
            {"Name": name, "Value": value}
            for name, value in (("prefix", prefix), ("suffix", suffix))
            if value
        ]
        configuration: dict[str, Any] = {"TopicArn": topic, "Events": list(events)}
        if rules:
            configuration["Filter"] = {"Key": {"FilterRules": rules}}
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"TopicConfigurations": [configuration]},
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)
            self.process = None
        if self._owns_dir:
            # Each run of hanshu dev made one; none is left behind in the temporary folder.
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self._owns_dir = False
