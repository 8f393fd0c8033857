"""Reading a Pulumi DIY backend in an Azure Blob Storage container, through azure-storage-blob.

Credentials in the order the Pulumi CLI's azblob driver (gocloud.dev) takes them: `AZURE_STORAGE_CONNECTION_STRING`;
else the account (`storage_account=` in the URL or `AZURE_STORAGE_ACCOUNT`) with `AZURE_STORAGE_KEY` or
`AZURE_STORAGE_SAS_TOKEN`; else azure-identity's DefaultAzureCredential: a service principal in the
environment, workload identity federation (GitHub Actions OIDC), managed identity, or the Azure CLI's login.
It is an optional extra (`pip install 'vastguard[azure]'`; `./dev setup` installs it), imported only when an
`azblob://` backend is read.

URLs: `azblob://container[/prefix]?storage_account=NAME`, plus gocloud's `domain=` (default
`blob.core.windows.net`), `protocol=http|https` and `localemu=true` (the local emulator's
`protocol://domain/account` addressing, as Azurite serves it).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reports.sources import SourceError, missing_extra


@dataclass(frozen=True)
class AzureLocation:
    container: str
    prefix: str
    account: str | None
    domain: str = "blob.core.windows.net"
    protocol: str = "https"
    local_emulator: bool = False

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> AzureLocation:
        env = os.environ if environ is None else environ
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "azblob" or not parts.netloc:
            raise SourceError(f"{url!r} is not an azblob://container[/prefix] URL")
        params = dict(urllib.parse.parse_qsl(parts.query))
        protocol = params.get("protocol") or "https"
        if protocol not in {"http", "https"}:
            raise SourceError(f"protocol={protocol!r} in {url!r}: use http or https")
        return cls(container=parts.netloc, prefix=parts.path.strip("/"),
                   account=params.get("storage_account") or env.get("AZURE_STORAGE_ACCOUNT") or None,
                   domain=params.get("domain") or "blob.core.windows.net", protocol=protocol,
                   local_emulator=(params.get("localemu") or "").lower() in {"1", "true", "yes"})

    def account_url(self) -> str:
        if self.account is None:
            raise SourceError(f"no storage account for azblob://{self.container}: add ?storage_account=NAME to the "
                              "backend URL or export AZURE_STORAGE_ACCOUNT")
        if self.local_emulator:
            return f"{self.protocol}://{self.domain}/{self.account}"
        return f"{self.protocol}://{self.account}.{self.domain}"


class AzureBlobBucket:
    """Lists and reads blobs under `location.prefix`; keys it returns are relative to that prefix."""

    parallelism = 8

    def __init__(self, location: AzureLocation, *, environ: Mapping[str, str] | None = None) -> None:
        self.location = location
        self._env = os.environ if environ is None else environ
        self._container = self._connect()

    def _connect(self) -> Any:
        try:
            from azure.storage.blob import ContainerClient
        except ImportError:
            raise missing_extra("azblob://", "azure", "azure-storage-blob") from None
        loc = self.location
        if connection := self._env.get("AZURE_STORAGE_CONNECTION_STRING"):
            return ContainerClient.from_connection_string(connection, loc.container)
        credential: Any
        if key := self._env.get("AZURE_STORAGE_KEY"):
            credential = {"account_name": loc.account, "account_key": key}
        elif sas := self._env.get("AZURE_STORAGE_SAS_TOKEN"):
            credential = sas
        else:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise missing_extra("azblob:// without a key or SAS token", "azure", "azure-identity") from None
            credential = DefaultAzureCredential()
        return ContainerClient(loc.account_url(), loc.container, credential=credential)

    def _full(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _fail(self, action: str, err: Exception) -> SourceError:
        where = f"azblob://{self.location.container}"
        status = getattr(err, "status_code", None)
        code = getattr(err, "error_code", None) or ""
        advice = {403: "the credential lacks Storage Blob Data Reader on the container, or the key/SAS is wrong",
                  404: "no such container or blob: check the backend URL"}.get(status or 0, "")
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        detail = f"HTTP {status} {code}".strip() if status else first
        return SourceError(f"Azure Blob {action} on {where} failed: {detail}" + (f" ({advice})" if advice else ""))

    def list(self, prefix: str) -> list[str]:
        from azure.core.exceptions import AzureError

        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        try:
            return [str(blob.name)[strip:] for blob in self._container.list_blobs(name_starts_with=self._full(prefix))]
        except AzureError as err:
            raise self._fail("list", err) from None

    def read(self, key: str) -> bytes:
        from azure.core.exceptions import AzureError

        try:
            data: bytes = self._container.download_blob(self._full(key)).readall()
        except AzureError as err:
            raise self._fail(f"read of {key}", err) from None
        return data

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist (`overwrite=False`, an If-None-Match: * upload); False when
        it did."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            self._container.upload_blob(self._full(key), data, overwrite=False)
        except ResourceExistsError:
            return False
        except AzureError as err:
            raise self._fail(f"write of {key}", err) from None
        return True
