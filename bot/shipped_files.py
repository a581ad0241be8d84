"""The files wagate reads beside its code: the locale catalogs and keyword
lists (`locales/`) and the example config. A checkout keeps them at its top;
a wheel carries copies in `bot/shipped/` (setup.py's build step puts them there),
so an installed wagate runs from any folder."""

from __future__ import annotations

from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]
_PACKAGED = Path(__file__).resolve().parent / "shipped"


def locales_dir() -> Path:
    """The checkout's `locales/` (an editable install, tests), else the wheel's copy."""
    checkout = _CHECKOUT / "locales"
    return checkout if (checkout / "messages.pot").is_file() else _PACKAGED / "locales"


def example_config() -> Path:
    """config.example.toml: the checkout's, else the wheel's copy."""
    checkout = _CHECKOUT / "config.example.toml"
    return checkout if checkout.is_file() else _PACKAGED / "config.example.toml"
