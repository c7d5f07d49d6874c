"""streamrank's composition root. `faust -A app worker` finds the Faust app as `app.app`."""
from typing import Any


def __getattr__(name: str) -> Any:
    # Built on first use, so `import app.settings` (the gateway, the jobs) stays light.
    if name == "app":
        from app.main import faust_app

        return faust_app
    raise AttributeError(name)
