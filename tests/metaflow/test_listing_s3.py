"""The S3 listing of a flow's prefix (safeart.metaflow.listing) against an in-memory
``ListObjectsV2``: every key of the flow and none of another, whatever the split into key
ranges, also on a server that reads ``StartAfter=folder`` as "skip that folder" (SeaweedFS
4.48, seen on loopback); a server that refuses large pages (SeaweedFS: ``InvalidArgument``
above 65,535 keys) is listed at S3's own page size instead of failing the audit."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from safeart.metaflow.listing import S3_PAGE_KEYS, list_flow

STAMP = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class ServerError(Exception):
    """What botocore raises for an error answer: the parsed answer in ``response``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class Bucket:
    """``list_objects_v2`` over sorted keys, pages of at most ``cap`` keys (1,000 like S3,
    or more like moto); asking for more than ``refuse_above`` is an InvalidArgument;
    ``skips_folder``: ``StartAfter=X`` also skips the keys under ``X/`` (SeaweedFS)."""

    def __init__(self, keys: list[str], cap: int = 1000, refuse_above: int | None = None,
                 skips_folder: bool = False):
        self.keys, self.cap, self.refuse_above = sorted(keys), cap, refuse_above
        self.skips_folder = skips_folder
        self.asked: list[int] = []

    def list_objects_v2(self, Bucket: str, Prefix: str, MaxKeys: int,  # noqa: N803
                        StartAfter: str = "", ContinuationToken: str = "") -> dict[str, Any]:
        self.asked.append(MaxKeys)
        if self.refuse_above is not None and MaxKeys > self.refuse_above:
            raise ServerError("InvalidArgument")
        after = ContinuationToken or StartAfter
        keys = [k for k in self.keys if k.startswith(Prefix) and k > after
                and not (self.skips_folder and StartAfter and k.startswith(StartAfter + "/"))]
        page = keys[:min(MaxKeys, self.cap)]
        return {"Contents": [{"Key": k, "Size": 1, "ETag": '"e"', "LastModified": STAMP}
                             for k in page],
                "IsTruncated": len(keys) > len(page),
                **({"NextContinuationToken": page[-1]} if page else {})}


class Storage:
    def __init__(self, bucket: Bucket) -> None:
        self.s3_client = type("Client", (), {"client": bucket})()


def flow_keys(runs: int) -> list[str]:
    keys = [f"root/F/{run}/start/{run}/0.{name}" for run in range(1, runs + 1)
            for name in ("attempt.json", "data.json", "DONE.lock")]
    keys += [f"root/F/data/{i:02x}/{i:02x}{'0' * 38}" for i in range(200)]
    return keys + ["root/F/zzz-after-data", "root/G/1/start/1/0.data.json"]


@pytest.mark.parametrize("cap, skips_folder", [(1000, False), (100_000, False),
                                                (1000, True)])
def test_every_key_of_the_flow_once_across_key_ranges(cap: int, skips_folder: bool) -> None:
    keys = flow_keys(3000)  # more runs than one key range holds
    listing = list_flow("s3", "s3://bucket/root", "F",
                        Storage(Bucket(keys, cap, skips_folder=skips_folder)),
                        runs=[str(r) for r in range(1, 3001)])
    assert listing is not None
    assert sorted(listing.objects) == sorted(k[len("root/"):] for k in keys
                                             if k.startswith("root/F/"))


def test_a_server_refusing_large_pages_is_listed_at_s3_page_size() -> None:
    keys = flow_keys(1500)
    bucket = Bucket(keys, cap=65_535, refuse_above=65_535)
    listing = list_flow("s3", "s3://bucket/root", "F", Storage(bucket),
                        runs=[str(r) for r in range(1, 1501)])
    assert listing is not None and len(listing.objects) == len(keys) - 1
    refused = [n for n in bucket.asked if n > 65_535]
    assert refused and len(refused) <= 2  # at most one refusal per range listed at once
    assert max(bucket.asked[bucket.asked.index(refused[-1]) + 1:]) <= S3_PAGE_KEYS


def test_other_server_errors_are_not_retried() -> None:
    class Denied(Bucket):
        def list_objects_v2(self, **request: Any) -> dict[str, Any]:
            self.asked.append(request["MaxKeys"])
            raise ServerError("AccessDenied")

    bucket = Denied(flow_keys(3))
    with pytest.raises(ServerError, match="AccessDenied"):
        list_flow("s3", "s3://bucket/root", "F", Storage(bucket), runs=["1", "2", "3"])
    assert len(bucket.asked) <= 4  # one request per range, none retried
