"""selfplay: the platform (config, engine, league, ratings, tracking, CLI)."""

__version__ = "0.1.0"
