"""The managed state merged into the config: subscribers kept in the store
beside the file's provisioned ones (bot/services/managed.py loads them).

`merged(file_config, managed)` is what every request reads: the file's
subscribers, then the managed ones, with the lookup tables rebuilt. The file
wins a clash (an id, client id or keyword the file also names): what an
operator keeps under version control is not overridden by the API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.config.types import Config, SecretHash, SubscriberConfig, WebhookConfig


@dataclass(frozen=True, slots=True)
class SigningSecretInfo:
    """When a signing secret was issued and stops signing (None: the current
    one), as the API shows it: never the secret."""

    created_at: float
    expires_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedEndpoint:
    """A webhook endpoint kept in the store, as the API shows it. `hook` is what
    deliveries use; it is among its subscriber's `webhooks` while enabled."""

    hook: WebhookConfig
    subscriber_id: str
    enabled: bool
    description: str | None
    created_at: float
    updated_at: float
    secrets: tuple[SigningSecretInfo, ...] = ()  # oldest first

    @property
    def id(self) -> str:
        return self.hook.key


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionedOverride:
    """What the store holds for a provisioned subscriber whose file entry says
    `self_service = true`: its own secret, once it rotated it (replacing the
    file's hash)."""

    secret_sha256: bytes | None = None
    older_secrets: tuple[SecretHash, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()  # its own endpoints, beside the file's


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedSet:
    """The managed state one load read: its version (bumped by every change),
    the managed subscribers by id, and the overrides of provisioned ones."""

    version: int = -1  # none loaded yet
    subscribers: Mapping[str, SubscriberConfig] = field(default_factory=dict)
    provisioned: Mapping[str, ProvisionedOverride] = field(default_factory=dict)
    # Every endpoint in the store (enabled or not) by subscriber id.
    endpoints: Mapping[str, tuple[ManagedEndpoint, ...]] = field(default_factory=dict)


def _provisioned(sub: SubscriberConfig, override: ProvisionedOverride | None) -> SubscriberConfig:
    if override is None or not sub.self_service:
        return sub
    if override.webhooks:
        sub = dataclasses.replace(sub, webhooks=sub.webhooks + override.webhooks)
    if override.secret_sha256 is None:
        return sub
    return dataclasses.replace(sub, secret_sha256=override.secret_sha256,
                               older_secrets=override.older_secrets)


def merged(config: Config, managed: ManagedSet) -> Config:
    """`config` (the file's) with the managed state in: one dict per lookup,
    rebuilt whole, so a request holding the old config never sees a mix."""
    instances = config.instances
    if any(i.owner != "shared" for i in instances.values()):
        instances = {
            key: inst if inst.owner == "shared" or inst.owner_missing == missing
            else dataclasses.replace(inst, owner_missing=missing)
            for key, inst in instances.items()
            for missing in (inst.owner not in config.subscribers
                            and inst.owner not in managed.subscribers,)}
    if not managed.subscribers and not managed.provisioned:
        return config if instances is config.instances else dataclasses.replace(
            config, instances=instances)
    file_subs = {sub_id: _provisioned(sub, managed.provisioned.get(sub_id))
                 for sub_id, sub in config.subscribers.items()}
    subs = {**file_subs, **{sub_id: sub for sub_id, sub in managed.subscribers.items()
                            if sub_id not in file_subs}}
    by_client: dict[str, SubscriberConfig] = {}
    by_keyword: dict[str, SubscriberConfig] = {}
    for group in (subs.values(), file_subs.values()):  # the file's last: it wins
        for sub in group:
            by_client[sub.client_id] = sub
            if sub.keyword:
                by_keyword[sub.keyword.casefold()] = sub
    return dataclasses.replace(config, instances=instances, subscribers=subs,
                               subscribers_by_client_id=by_client,
                               subscribers_by_keyword=by_keyword)
