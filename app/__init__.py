"""streamrank's composition root. `faust -A app worker` finds the Faust app as `app.app`."""
from typing import Any

# Every Kafka consumer of the process reads past a record whose header key is not UTF-8.
# (Thread pools are set by each entry point: app.threads.limit_threads.)
from app import kafka_compat  # noqa: F401 — not `import app.…`: that would bind `app.app`


def __getattr__(name: str) -> Any:
    # Built on first use, so `import app.settings` (the gateway, the jobs) stays light.
    if name == "app":
        from app.main import faust_app

        return faust_app
    raise AttributeError(name)
