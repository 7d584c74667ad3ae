"""Outgoing webhooks: a finished job is POSTed to the URL it named, signed, retried.

Only the models are imported here, because ``generation.models`` imports this
package while the app registry is still loading. The rest lives in submodules:
``services`` (writes, the hook called by ``generation.events``), ``delivery``
(one signed attempt, the in-process loop), ``tasks`` (procrastinate), ``selectors``,
``api`` (the account routes) and ``admin``.
"""

from generation.outbound.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
)

__all__ = ["DeliveryStatus", "WebhookAttempt", "WebhookDelivery", "WebhookSecret"]
