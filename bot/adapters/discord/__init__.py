"""Discord adapter (discord.py): a thin edge over ``moderation.service.ModerationService``.

``convert.py`` is the only module that turns discord.py objects into domain objects; ``actions.py``
carries out decisions; ``views.py`` and ``commands.py`` are what moderators, admins and members use.
"""

from bot.adapters.discord.bot import (
    ChatmodDiscordBot,
    DiscordStartupError,
    MissingIntents,
    build_discord_bot,
    required_intents,
)

__all__ = [
    "ChatmodDiscordBot",
    "DiscordStartupError",
    "MissingIntents",
    "build_discord_bot",
    "required_intents",
]
