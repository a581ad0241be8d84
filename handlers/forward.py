"""Every inbound message is offered to subscriber webhooks (greetings and STOP too)."""

from __future__ import annotations

from bot.dispatch import ANY, Context, Router
from bot.events import InboundMessage

router = Router(name="forward", observe=True)


@router.message(ANY)
async def forward(msg: InboundMessage, ctx: Context, _match: bool) -> None:
    data: dict[str, object] = {
        "id": f"{msg.provider}:{msg.provider_message_id}",
        "instance_id": msg.instance_id,
        "gateway_number": ctx.instance.number,
        "from": msg.sender,
        "type": msg.kind,
        "text": msg.text,
        "profile_name": msg.profile_name,
        "timestamp": msg.timestamp,
    }
    if msg.user_id:
        data["user_id"] = msg.user_id
    if msg.group is not None:
        data["group"] = {"id": msg.group.id, "name": msg.group.name or (
            ctx.state.group.name if ctx.state.group else None)}
    ctx.emit("message.received", data)
