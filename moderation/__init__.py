"""chatmod's platform-agnostic moderation core.

Pure decision logic (policy, filters, normalisation) plus the service that drives it over ports.
Nothing here imports discord, slack_bolt or fastapi; torch is imported only by
``moderation.scoring.backend``.
"""
