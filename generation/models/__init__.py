"""generation's models: the registry (``registry``) and jobs (``jobs``)."""

from generation.models.canary import Canary, CanaryArm, CanaryDecision, CanaryStatus
from generation.models.jobs import (
    ACTIVE_STATUSES,
    ALLOWED_FROM,
    RATING_COMMENT_MAX,
    RATING_MAX,
    RATING_MIN,
    TERMINAL_STATUSES,
    AttemptOutcome,
    IllegalTransition,
    Image,
    ImageRating,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    RoutedBy,
)
from generation.models.registry import (
    AIModel,
    ModelKind,
    Provider,
    ProviderEndpoint,
    ProviderPolicy,
)

__all__ = [
    "ACTIVE_STATUSES", "ALLOWED_FROM", "RATING_COMMENT_MAX", "RATING_MAX", "RATING_MIN",
    "TERMINAL_STATUSES", "AIModel", "AttemptOutcome", "Canary", "CanaryArm",
    "CanaryDecision", "CanaryStatus", "IllegalTransition", "Image",
    "ImageRating", "Job", "JobAttempt", "JobEvent", "JobStatus", "ModelKind", "Provider",
    "ProviderEndpoint", "ProviderPolicy", "RoutedBy",
]
