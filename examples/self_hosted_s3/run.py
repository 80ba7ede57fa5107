"""Example 4, self-hosted S3: the blog's flow with its datastore on an S3-compatible server.

    python examples/self_hosted_s3/run.py [--keep]

Starts ``moto_server`` on a free 127.0.0.1 port (dummy credentials, bucket ``mfbucket``),
points Metaflow at it -- METAFLOW_DEFAULT_DATASTORE=s3, METAFLOW_DATASTORE_SYSROOT_S3,
METAFLOW_S3_ENDPOINT_URL; the same variables work for MinIO, Ceph or any S3 API -- then
runs examples/blog (flow + production script) and scans the run, reading the blobs back
from the bucket. The server is stopped at the end. Metadata stays local.
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # write nothing outside the temporary directory
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _env import check, example_env, import_example, moto_s3, section  # noqa: E402

blog = import_example("blog/run.py")


def main() -> None:
    with example_env("s3") as env:
        section("0. an S3-compatible server on loopback")
        with moto_s3(env) as s3:
            env.activate(s3)  # this process and every command below use the bucket
            for name in ("METAFLOW_DEFAULT_DATASTORE", "METAFLOW_DATASTORE_SYSROOT_S3",
                         "METAFLOW_S3_ENDPOINT_URL"):
                print(f"   {name}={s3[name]}")
            run = blog.main(env)

            section(f"3. scan the run: blobs are read back from {s3['METAFLOW_DATASTORE_SYSROOT_S3']}")
            code, out = env.safeart("scan", run, "--policy", str(blog.POLICY),
                                    keep=lambda line: not line.startswith("CLEAN"))
            check(code == 0, "the scan of the S3 run is not clean")
            objects = _objects(s3, f"metaflow/{run.split('/')[0]}/data/")
            print(f"   {objects} artifact blobs in the bucket; none under {env.root}/.metaflow: "
                  f"{not (env.root / '.metaflow' / run.split('/')[0] / 'data').exists()}")
            check(objects > 0, "no artifact blob in the bucket")
    print(f"\nOK: {run} stored in S3 (moto on 127.0.0.1) without pickle, served and scanned")


def _objects(s3: dict, prefix: str) -> int:
    import boto3

    client = boto3.client("s3", endpoint_url=s3["METAFLOW_S3_ENDPOINT_URL"],
                          aws_access_key_id="dummy", aws_secret_access_key="dummy",
                          region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="mfbucket", Prefix=prefix)
    return sum(len(page.get("Contents", [])) for page in pages)


if __name__ == "__main__":
    main()
