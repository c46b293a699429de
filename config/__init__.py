"""Configuration: typed settings from ``DL_*`` environment variables."""

from __future__ import annotations

from config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
