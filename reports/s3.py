"""A minimal read-only S3 client (ListObjectsV2 and GetObject) signed with AWS Signature Version 4.

Why not boto3 or httpx: the reports only ever list and read a Pulumi state bucket, the project keeps httpx
inside the Vast client package, and boto3 would add ~80 MB of dependencies for two GET requests. Standard
library only: urllib for HTTP, hashlib/hmac for SigV4, xml.etree for the listing.

Backend URLs follow Pulumi's DIY convention (gocloud.dev): `s3://bucket/prefix?region=...&endpoint=...`,
with `s3ForcePathStyle=true` / `use_path_style=true` for path-style addressing (MinIO, Ceph, localstack) and
`disableSSL=true` / `disable_https=true` for plain HTTP. Credentials come from the standard environment
variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`); profiles and
instance roles are not supported.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = "-_.~"
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(RuntimeError):
    """A failed S3 request; carries the status and S3's error code, never the credentials."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            raise S3Error("no S3 credentials: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                          "(and AWS_SESSION_TOKEN for temporary credentials)")
        return cls(access_key=access, secret_key=secret, session_token=env.get("AWS_SESSION_TOKEN") or None)


def _quote(value: str, *, safe: str = "") -> str:
    return urllib.parse.quote(value, safe=_UNRESERVED + safe)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret_key).encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(*, method: str, url: str, headers: Mapping[str, str], credentials: Credentials, region: str,
         service: str = "s3", when: datetime, payload_hash: str = EMPTY_SHA256) -> dict[str, str]:
    """SigV4: return `headers` plus `Host`, `X-Amz-Date`, the session token if any, and `Authorization`.

    The caller decides whether `x-amz-content-sha256` is among the headers (S3 requires it, other services do
    not), so the function reproduces AWS's published test vectors for both.
    """
    parts = urllib.parse.urlsplit(url)
    amz_date = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    out = dict(headers)
    out["Host"] = parts.netloc
    out["X-Amz-Date"] = amz_date
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    canonical_headers = sorted((k.lower().strip(), " ".join(v.strip().split())) for k, v in out.items())
    signed_headers = ";".join(k for k, _ in canonical_headers)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query))
    canonical_request = "\n".join([
        method,
        _quote(urllib.parse.unquote(parts.path) or "/", safe="/"),
        canonical_query,
        "".join(f"{k}:{v}\n" for k, v in canonical_headers),
        signed_headers,
        payload_hash,
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest(),
    ])
    signature = hmac.new(signing_key(credentials.secret_key, day, region, service), string_to_sign.encode(),
                         hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    region: str
    endpoint: str  # scheme://host[:port], without the bucket
    path_style: bool = False

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> S3Location:
        env = os.environ if environ is None else environ
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"{url!r} is not an s3://bucket[/prefix] URL")
        params = dict(urllib.parse.parse_qsl(parts.query))
        region = params.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        scheme = "http" if _truthy(params.get("disableSSL")) or _truthy(params.get("disable_https")) else "https"
        endpoint = params.get("endpoint") or ""
        if endpoint and "://" not in endpoint:
            endpoint = f"{scheme}://{endpoint}"
        path_style = _truthy(params.get("s3ForcePathStyle")) or _truthy(params.get("use_path_style"))
        if not endpoint:
            endpoint = f"https://s3.{region}.amazonaws.com"
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"), region=region, endpoint=endpoint.rstrip("/"),
                   path_style=path_style)

    def object_url(self, key: str, query: str = "") -> str:
        path = _quote(key, safe="/")
        suffix = f"?{query}" if query else ""
        if self.path_style:
            return f"{self.endpoint}/{self.bucket}/{path}{suffix}"
        scheme, host = self.endpoint.split("://", 1)
        return f"{scheme}://{self.bucket}.{host}/{path}{suffix}"


class S3Bucket:
    """Lists and reads keys under `location.prefix`; keys it returns are relative to that prefix."""

    parallelism = 8  # network latency dominates: keep several GETs in flight

    def __init__(self, location: S3Location, credentials: Credentials, *, timeout: float = 60.0,
                 clock: type[datetime] = datetime) -> None:
        self.location = location
        self.credentials = credentials
        self.timeout = timeout
        self._clock = clock

    def _full(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _get(self, url: str) -> bytes:
        headers = sign(method="GET", url=url, headers={"x-amz-content-sha256": EMPTY_SHA256},
                       credentials=self.credentials, region=self.location.region, when=self._clock.now(UTC))
        headers.pop("Host")  # urllib sets it from the URL, identically
        request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 -- http(s) only, built above
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as err:
            body = err.read()
            code = _error_code(body)
            raise S3Error(f"S3 GET {urllib.parse.urlsplit(url).path} failed: HTTP {err.code} {code or ''}".strip(),
                          status=err.code, code=code) from None
        except urllib.error.URLError as err:
            raise S3Error(f"S3 endpoint {self.location.endpoint} unreachable: {err.reason}") from None

    def list(self, prefix: str) -> list[str]:
        full_prefix = self._full(prefix)
        keys: list[str] = []
        token: str | None = None
        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        while True:
            params = {"list-type": "2", "prefix": full_prefix}
            if token:
                params["continuation-token"] = token
            query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(params.items()))
            url = self.location.object_url("", query)
            root = ET.fromstring(self._get(url))  # noqa: S314 -- the user's own S3 endpoint
            for contents in root.iter(f"{_S3_NS}Contents"):
                key = contents.findtext(f"{_S3_NS}Key")
                if key is not None:
                    keys.append(key[strip:])
            truncated = root.findtext(f"{_S3_NS}IsTruncated") == "true"
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if not truncated or not token:
                return keys

    def read(self, key: str) -> bytes:
        return self._get(self.location.object_url(self._full(key)))


def _error_code(body: bytes) -> str | None:
    try:
        return ET.fromstring(body).findtext("Code")  # noqa: S314
    except ET.ParseError:
        return None
