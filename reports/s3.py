"""Reading a Pulumi DIY backend in an S3 bucket (or any S3-compatible store: MinIO, Ceph, R2), through boto3.

boto3 brings AWS's standard credential chain, the same one the Pulumi CLI uses for `s3://` backends: the
environment (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`), shared config and credentials
files with profiles (`AWS_PROFILE`, or `?profile=` in the URL) including SSO and `credential_process`, web
identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: GitHub Actions OIDC), container and instance roles.
It is an optional extra (`pip install 'vastguard[s3]'`; `./dev setup` installs it), imported only when an
`s3://` backend is read.

Backend URLs follow Pulumi's DIY convention (gocloud.dev): `s3://bucket/prefix?region=...&endpoint=...`,
`s3ForcePathStyle=true` / `use_path_style=true` for path-style addressing, `disableSSL=true` /
`disable_https=true` for plain HTTP, `profile=NAME` for a named profile.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reports.sources import SourceError, missing_extra


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    region: str | None
    endpoint: str | None  # scheme://host[:port], without the bucket; None = AWS's own
    path_style: bool = False
    profile: str | None = None

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> S3Location:
        env = os.environ if environ is None else environ
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise SourceError(f"{url!r} is not an s3://bucket[/prefix] URL")
        params = dict(urllib.parse.parse_qsl(parts.query))
        region = params.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        scheme = "http" if _truthy(params.get("disableSSL")) or _truthy(params.get("disable_https")) else "https"
        endpoint = params.get("endpoint") or None
        if endpoint and "://" not in endpoint:
            endpoint = f"{scheme}://{endpoint}"
        path_style = _truthy(params.get("s3ForcePathStyle")) or _truthy(params.get("use_path_style"))
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"), region=region,
                   endpoint=endpoint.rstrip("/") if endpoint else None, path_style=path_style,
                   profile=params.get("profile") or None)


class S3Bucket:
    """Lists and reads keys under `location.prefix`; keys it returns are relative to that prefix."""

    parallelism = 8  # network latency dominates: keep several GETs in flight
    page_size = 1000

    def __init__(self, location: S3Location, *, client: Any = None) -> None:
        self.location = location
        self._client = client if client is not None else self._connect()

    def _connect(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise missing_extra("s3://", "s3", "boto3") from None
        loc = self.location
        try:
            session = boto3.session.Session(profile_name=loc.profile)
        except Exception as err:  # botocore's ProfileNotFound and friends: say which profile
            raise SourceError(f"AWS profile {loc.profile!r} for {loc.bucket}: {err}") from None
        config = Config(s3={"addressing_style": "path" if loc.path_style else "auto"},
                        retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=self.parallelism)
        return session.client("s3", region_name=loc.region, endpoint_url=loc.endpoint, config=config)

    def _full(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _fail(self, action: str, err: Exception) -> SourceError:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        where = f"s3://{self.location.bucket}" + (f" at {self.location.endpoint}" if self.location.endpoint else "")
        if isinstance(err, NoCredentialsError):
            return SourceError(f"no AWS credentials for {where}: set AWS_PROFILE (a profile in ~/.aws/config, "
                               "e.g. after `aws sso login`), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a web "
                               "identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE); add ?profile=NAME to the URL "
                               "for a named profile")
        if isinstance(err, EndpointConnectionError):
            return SourceError(f"S3 endpoint of {where} unreachable: {err}")
        if isinstance(err, ClientError):
            code = err.response.get("Error", {}).get("Code", "")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            advice = {"AccessDenied": "the credentials lack s3:ListBucket/s3:GetObject on it",
                      "InvalidAccessKeyId": "the access key is not known: check the profile or AWS_ACCESS_KEY_ID",
                      "SignatureDoesNotMatch": "the secret key does not match the access key",
                      "NoSuchBucket": "no such bucket: check the backend URL"}.get(code, "")
            return SourceError(f"S3 {action} on {where} failed: HTTP {status} {code}"
                               + (f" ({advice})" if advice else ""))
        return SourceError(f"S3 {action} on {where} failed: {err}")

    def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self._full(prefix), PaginationConfig={"PageSize": self.page_size})
            for page in pages:
                keys.extend(str(item["Key"])[strip:] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as err:
            raise self._fail("list", err) from None
        return keys

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body: bytes = self._client.get_object(Bucket=self.location.bucket, Key=self._full(key))["Body"].read()
        except (BotoCoreError, ClientError) as err:
            raise self._fail(f"read of {key}", err) from None
        return body

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist (S3's conditional `If-None-Match: *`); False when it did.
        A 409 (another conditional write of the same key in flight) is the same answer: someone else has it."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.location.bucket, Key=self._full(key), Body=data, IfNoneMatch="*")
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412):
                return False
            raise self._fail(f"write of {key}", err) from None
        except BotoCoreError as err:
            raise self._fail(f"write of {key}", err) from None
        return True
