"""`chatmod retrain`: one retraining round now, or on the configured schedule (APScheduler cron)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bot.settings import Settings, load_settings

log = logging.getLogger("chatmod.retrain")


async def retrain_once(
    settings: Settings, *, epochs: float = 1.0, max_steps: int = 0, limit: int | None = None
) -> Any:
    from bot.compose import card_tiers, open_database
    from moderation.policy import DEFAULT_TIERS
    from moderation.scoring.backend import TorchScorer
    from training.pipeline import run
    from training.retrain import retrain
    from training.train import TrainConfig

    data_dir = Path(settings.training.data_dir)
    out_root = Path(settings.training.output_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")

    def train_candidate(run_dir: Path, out_dir: Path, extra: Sequence[Any]) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = TrainConfig(epochs=epochs, max_steps=max_steps)
        return run(data_dir, run_dir, out_dir, cfg, extra=extra, limit=limit)

    def load_scorer(path: Path | None) -> TorchScorer:
        return TorchScorer.load(path, device=settings.model.device)

    publish = None
    if settings.worker.transport == "redis":
        import redis.asyncio as aioredis

        async def publish(path: str) -> None:
            client = aioredis.from_url(settings.redis.url)
            try:
                await client.publish("chatmod:model:reload", path)
            finally:
                await client.aclose()

    async with open_database(settings.database) as store:
        report = await retrain(
            store=store,
            data_dir=data_dir,
            run_dir=out_root / f"retrain-{stamp}",
            models_root=out_root / "models",
            current_model=Path(settings.model.path) if settings.model.path else None,
            load_scorer=load_scorer,
            train_candidate=train_candidate,
            min_new_verdicts=settings.training.min_new_verdicts,
            publish_reload=publish,
            current_tiers=card_tiers(settings.model) or DEFAULT_TIERS,
            now=datetime.now(UTC),
        )
    return report


def register(app: typer.Typer) -> None:
    @app.command()
    def retrain(
        config: Path | None = typer.Option(
            None, "--config", "-c", help="TOML config (default: ./chatmod.toml)"
        ),
        schedule: bool = typer.Option(False, help="Keep running and retrain on training.retrain_cron"),
        epochs: float = typer.Option(1.0, help="Epochs over base data + verdicts"),
        max_steps: int = typer.Option(0, help="Stop after this many steps (0 = no cap)"),
        limit: int | None = typer.Option(None, help="Rows per base source (quick runs)"),
    ) -> None:
        """Retrain from moderator verdicts; promote the candidate only if it is not worse."""
        settings = load_settings(config)
        if not schedule:
            report = asyncio.run(retrain_once(settings, epochs=epochs, max_steps=max_steps, limit=limit))
            typer.echo(report.to_json())
            return
        if not settings.training.retrain_cron:
            typer.echo("training.retrain_cron is empty: scheduled retraining is off", err=True)
            raise typer.Exit(2)

        async def main() -> None:
            from apscheduler.schedulers.asyncio import AsyncIOScheduler
            from apscheduler.triggers.cron import CronTrigger

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)

            async def job() -> None:
                report = await retrain_once(settings, epochs=epochs, max_steps=max_steps, limit=limit)
                log.info("scheduled retrain: %s", report.status)

            scheduler = AsyncIOScheduler(timezone="UTC")
            scheduler.add_job(
                job,
                CronTrigger.from_crontab(settings.training.retrain_cron, timezone="UTC"),
                max_instances=1,
                coalesce=True,
            )
            scheduler.start()
            log.info("retraining scheduled: %s (UTC)", settings.training.retrain_cron)
            await stop.wait()
            scheduler.shutdown(wait=False)

        asyncio.run(main())
