"""The configuration's types, as `from bot.config import Config` reads them.

Only the types: parsing is `bot.config.load` (it imports the provider
registry, so importing it here would bring the import circle back).
"""

from bot.config.types import (
    DEFAULT_PLANS,
    DEFAULT_RETRY_SCHEDULE,
    FEATURES,
    POSTGRES_SCHEMES,
    PROFILE_FIELDS,
    SQLITE_SCHEME,
    WEBHOOK_EVENTS,
    Config,
    ConfigError,
    DefaultsConfig,
    InstanceConfig,
    MediaConfig,
    OutboundConfig,
    PlanConfig,
    Profile,
    ServerConfig,
    StorageConfig,
    SubscriberConfig,
    TemplateConfig,
    Templates,
    WebhookConfig,
    WebhooksConfig,
    hash_secret,
    postgres_driver_missing,
)

__all__ = [
    "DEFAULT_PLANS",
    "DEFAULT_RETRY_SCHEDULE",
    "FEATURES",
    "POSTGRES_SCHEMES",
    "PROFILE_FIELDS",
    "SQLITE_SCHEME",
    "WEBHOOK_EVENTS",
    "Config",
    "ConfigError",
    "DefaultsConfig",
    "InstanceConfig", "MediaConfig",
    "OutboundConfig",
    "PlanConfig",
    "Profile",
    "ServerConfig",
    "StorageConfig",
    "SubscriberConfig",
    "TemplateConfig",
    "Templates",
    "WebhookConfig",
    "WebhooksConfig",
    "hash_secret",
    "postgres_driver_missing",
]
