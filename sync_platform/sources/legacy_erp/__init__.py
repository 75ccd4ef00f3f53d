"""The legacy ERP (a 4D database behind a REST API): session login, paged entity lists."""

from sync_platform.sources.legacy_erp.client import LegacyErpClient

__all__ = ["LegacyErpClient"]
