"""A File Explorer plugin in the style of Ango's public sample: it reads the
storage's keys with get_storages, lists the bucket with boto3 (AWS S3, or any
S3-compatible server when the storage has an endpoint URL), and either returns
the listing (upload false) or creates one asset per file with
upload_files_cloud. Runs unmodified under imerit-ango 1.3.22 and 1.4.x.

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... \
        python file_explorer_plugin.py
"""

import os

import boto3
from imerit_ango.plugins import FileExplorerPlugin, run
from imerit_ango.sdk import SDK

HOST = os.environ.get("HOST", "http://127.0.0.1:8000").rstrip("/")
PLUGIN_ID = os.environ["PLUGIN_ID"]
PLUGIN_SECRET = os.environ["PLUGIN_SECRET"]
PAGE_SIZE = 50


def object_url(storage, bucket, key):
    if storage.get("endpointUrl"):
        return f"{storage['endpointUrl'].rstrip('/')}/{bucket}/{key}"
    return "https://{}.s3.{}.amazonaws.com/{}".format(
        bucket, storage.get("region"), key
    )


def callback(data):
    bucket = data.get("bucket")
    folder = data.get("folder", "") or ""
    files = data.get("files", None)
    upload = data.get("upload", False)
    project_id = data.get("projectId", None)
    storage_id = data.get("storageId", None) or data.get("integrationId")
    scroll_token = data.get("scrollToken", None)
    logger = data.get("logger")

    logger.info("Plugin session is started!")
    sdk = SDK(api_key=data.get("apiKey"), host=HOST)
    storage = sdk.get_storages(storage_id)
    client = boto3.client(
        "s3",
        region_name=storage.get("region") or None,
        endpoint_url=storage.get("endpointUrl") or None,
        aws_access_key_id=storage.get("publicKey"),
        aws_secret_access_key=storage.get("privateKey"),
    )
    paginator = client.get_paginator("list_objects")

    if not upload:
        config = {"PageSize": PAGE_SIZE, "StartingToken": scroll_token}
        page = next(
            iter(
                paginator.paginate(
                    Bucket=bucket, Prefix=folder, Delimiter="/", PaginationConfig=config
                )
            )
        )
        keys = [c["Key"] for c in page.get("Contents", []) if c["Key"][-1] != "/"]
        token = keys[-1] if len(keys) == PAGE_SIZE else None
        folders = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return {
            "folders": folders,
            "files": keys,
            "scrollToken": token,
            "success": True,
        }

    to_upload = []
    if files:
        keys = list(files)
    else:
        keys = [
            c["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
            for c in page.get("Contents", [])
            if c["Key"][-1] != "/"
        ]
    for key in keys:
        to_upload.append({"data": object_url(storage, bucket, key), "externalId": key})
    logger.info(f"Uploading {len(to_upload)} file(s)")
    response = sdk.upload_files_cloud(
        project_id=project_id, assets=to_upload, storage_id=storage_id
    )
    logger.info("Plugin session is ended!")
    if response.get("status", "") == "success":
        return str(len(to_upload)) + " assets are uploaded!"
    return "Error: " + str(response.get("message", response))


if __name__ == "__main__":
    plugin = FileExplorerPlugin(id=PLUGIN_ID, secret=PLUGIN_SECRET, callback=callback)
    run(plugin, host=HOST)
