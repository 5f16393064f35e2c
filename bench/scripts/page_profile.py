"""Where one `/jobs/` page's time goes, inside one process: Django's test client (no socket)
renders the page for the admin (finished jobs' rows from the page cache, in the console's
Redis), first plainly, then under cProfile (which inflates Python time).

Run in the console's data dir with `manage.py shell -c "$(cat bench/scripts/page_profile.py)"`
(web_load.py --profile), with BENCH_REPEATS (pages per measurement) in the environment. Prints
one JSON line: {stage: milliseconds per page}.
"""

import cProfile
import json
import os
import pstats
import time

from django.conf import settings
from django.test import Client

from rftconsole.cli import first_admin


def main() -> None:
    repeats = int(os.environ["BENCH_REPEATS"])
    settings.ALLOWED_HOSTS.append("testserver")
    client = Client()
    client.force_login(first_admin())
    client.get("/jobs/")
    started = time.perf_counter()
    for _ in range(repeats):
        client.get("/jobs/")
    plain = (time.perf_counter() - started) / repeats
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(repeats):
        client.get("/jobs/")
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(suffix: str, name: str) -> float:
        """Milliseconds per page in a function (file suffix, name), callees included."""
        seconds = max(
            (row[3] for key, row in stats.items() if key[0].endswith(suffix) and key[2] == name),
            default=0.0,
        )
        return seconds / repeats * 1000

    total = cumulative("django/test/client.py", "request")
    view = cumulative("jobs/views.py", "job_list")
    print(
        json.dumps(
            {
                "page without profiler": plain * 1000,
                "page under cProfile": total,
                "  middleware, session and user": total - view,
                "  view: job_list": view,
                "    template rendering (render)": cumulative("django/shortcuts.py", "render"),
                "    the rows: from the page cache or made (list_rows)": cumulative(
                    "jobs/page_cache.py", "list_rows"
                ),
                "      made: points, health, rendering (the training job)": cumulative(
                    "django/template/loader.py", "render_to_string"
                )
                + cumulative("jobs/summary.py", "list_points"),
            }
        )
    )


main()  # `manage.py shell -c` runs this text (its __name__ is not "__main__")
