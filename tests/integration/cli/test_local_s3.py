"""Dev mode's S3 server leaves nothing behind: the log folder it made goes when it stops
(one given to it stays: it is the caller's)."""

from __future__ import annotations

import os
from pathlib import Path

from hanshu_cli.local_s3 import LocalS3


def test_the_folder_it_made_goes_with_it_and_a_given_one_stays(tmp_path: Path) -> None:
    made = LocalS3().start()
    try:
        assert os.path.isdir(made.log_dir)
        assert made.client("s3").list_buckets()["Buckets"] == []  # a real server answered
    finally:
        made.stop()
    assert not os.path.exists(made.log_dir)
    given = LocalS3(log_dir=str(tmp_path)).start()
    given.stop()
    assert (tmp_path / "moto.log").exists()
