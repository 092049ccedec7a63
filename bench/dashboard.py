"""The admin console at scale (issue 12): every spend page and export of the console timed at 1M and then
10M ledger rows, and the peak memory of the 90-day CSV of every rollup row.

The data: 500 people in 20 groups (a fifth in two), 60 models, two API keys each (a fifth use both), calls
over 90 days in time order with a realistic skew (a few people and models make most of the calls; the busiest
person makes ~40× the median's), sources chat, API, batch and system, 2% errors. The ledger is filled by
PostgreSQL itself (`INSERT ... SELECT` over `generate_series`: faster than COPY from Python, as no row
crosses the wire) with its indexes dropped and built again after, then the rollups are built from it with
`INSERT ... SELECT ... GROUP BY`, the rows `settle` would have written: per day, person, served model and
source; per day, model and source; per day and person; per day, person and source; per day, API key, model
and source.

Each page is requested through Django's test client in this process (URL routing, middleware, the view, the
queries and the template: all but the socket), `--runs` times after one warm-up; the table shows p50 and p95
in milliseconds at each size and their ratio. The CSV is streamed and consumed chunk by chunk; its peak is
Python's traced allocation while streaming (tracemalloc), its size the bytes produced.

    python -m orweb.devstack bench dashboard.py [--sizes 1000000,10000000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

from harness import fresh_database, percentile, with_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = "orweb_bench_dashboard"
PEOPLE, GROUPS, MODELS, DAYS = 500, 20, 60, 90

FILL = """
INSERT INTO billing_ledgerentry (
    call_id, generation_id, user_id, source, api_key_id, requested_model, served_model, provider,
    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost, cost_details,
    cost_source, status, error, ttft_ms, latency_ms, created, hold_id)
SELECT gen_random_uuid(), 'gen-' || %(offset)s + i, %(first_user)s + u, src,
       CASE WHEN src = 'api' THEN %(first_key)s + 2 * u + (u %% 5 = 0 AND random() < 0.5)::int END,
       m, m, 'bench', pt, ct, 0, 0, 0, round((pt * 0.000001 + ct * 0.000004) * (1 + mi %% 7), 10), '{}',
       'reported', st, '', 150 + (random() * 900)::int, 1000 + (random() * 9000)::int, at, NULL
FROM (
    SELECT i, u,
           -- most calls go to one of the person's six usual models, one in ten to any model
           CASE WHEN random() < 0.9 THEN ((u * 7 + floor(6 * power(random(), 2))::int) %% %(models)s)
                ELSE floor(%(models)s * power(random(), 2))::int END AS mi,
           (ARRAY['chat', 'chat', 'chat', 'api', 'api', 'batch', 'system'])[1 + floor(random() * 7)::int] AS src,
           (random() * 4000)::int AS pt, (random() * 1500)::int AS ct,
           CASE WHEN random() < 0.02 THEN 'error' WHEN random() < 0.01 THEN 'cancelled' ELSE 'ok' END AS st,
           -- in time order, as calls arrive: the ledger's heap follows `created`, as in production
           %(end)s::timestamptz - ((%(rows)s - i + random()) / %(rows)s) * %(days)s * interval '1 day' AS at
    FROM generate_series(1, %(rows)s) AS i,
         LATERAL (SELECT floor(%(people)s * power(random(), 3))::int + 0 * i AS u) person
) r
CROSS JOIN LATERAL (SELECT 'vendor' || (r.mi %% 8) || '/model-' || r.mi AS m) named
"""

# The ledger's indexes and constraints but its primary key: dropped before the fill and built again after it,
# as one sort each instead of ten million random insertions into nine B-trees (which made a 10M fill take
# half an hour).
LEDGER_CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'billing_ledgerentry'::regclass AND contype <> 'p' ORDER BY conname
"""
LEDGER_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'billing_ledgerentry' AND schemaname = current_schema()
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'billing_ledgerentry'::regclass)
ORDER BY indexname
"""

# The rollups as `settle` would have built them, from the ledger: per day, person, served model and source;
# from that per day, model and source, per day and person, per day, person and source; then per day, API key,
# model and source. Each in day order, as settling appends them day after day.
ROLLUP = """
TRUNCATE billing_dailyusage, billing_dailymodelusage, billing_dailypersonusage, billing_dailypersonsourceusage,
    billing_dailykeyusage;
INSERT INTO billing_dailyusage (day, user_id, model, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT (created AT TIME ZONE 'UTC')::date, user_id, coalesce(nullif(served_model, ''), requested_model), source,
       count(*), count(*) FILTER (WHERE status IN ('error', 'incomplete')), sum(prompt_tokens),
       sum(completion_tokens), sum(cost)
FROM billing_ledgerentry GROUP BY 1, 2, 3, 4 ORDER BY 1;
INSERT INTO billing_dailymodelusage (day, model, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT day, model, source, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM billing_dailyusage GROUP BY 1, 2, 3 ORDER BY 1;
INSERT INTO billing_dailypersonusage (day, user_id, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT day, user_id, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM billing_dailyusage GROUP BY 1, 2 ORDER BY 1;
INSERT INTO billing_dailypersonsourceusage
    (day, user_id, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT day, user_id, source, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost)
FROM billing_dailyusage GROUP BY 1, 2, 3 ORDER BY 1;
INSERT INTO billing_dailykeyusage
    (day, api_key_id, user_id, model, source, requests, errors, prompt_tokens, completion_tokens, cost)
SELECT (created AT TIME ZONE 'UTC')::date, api_key_id, user_id, coalesce(nullif(served_model, ''), requested_model),
       source, count(*), count(*) FILTER (WHERE status IN ('error', 'incomplete')), sum(prompt_tokens),
       sum(completion_tokens), sum(cost)
FROM billing_ledgerentry WHERE api_key_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5 ORDER BY 1;
"""
ROLLUPS = ("dailyusage", "dailymodelusage", "dailypersonusage", "dailypersonsourceusage", "dailykeyusage")


def people() -> dict:
    """The people, groups, models (with a price history) and keys; returns the ids the fill needs."""
    import datetime as dt
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from billing.budgets import set_budget
    from catalog.models import CatalogModel, PriceChange
    from gateway.keys import create_key

    users = get_user_model()
    made = users.objects.bulk_create([users(username=f"person{n:03}", is_staff=n == 0) for n in range(PEOPLE)])
    groups = Group.objects.bulk_create([Group(name=f"group{n:02}") for n in range(GROUPS)])
    membership = users.groups.through
    links = [membership(user_id=u.pk, group_id=groups[n % GROUPS].pk) for n, u in enumerate(made)]
    links += [membership(user_id=u.pk, group_id=groups[(n + 7) % GROUPS].pk) for n, u in enumerate(made) if n % 5 == 0]
    membership.objects.bulk_create(links)
    # Two keys each (a fifth of the people use both), made in order so person n's are first_key + 2n, + 1.
    keys = [create_key(user, f"bench {n}")[0] for user in made for n in range(2)]
    for n in range(0, PEOPLE, 10):
        set_budget(user=made[n], amount=Decimal(500))
    now = dt.datetime.now(dt.UTC)
    for m in range(MODELS):
        model = CatalogModel.objects.create(
            id=f"vendor{m % 8}/model-{m}",
            name=f"Model {m}",
            prompt_price=Decimal("0.000001"),
            completion_price=Decimal("0.000004"),
            expiration_date=(now + dt.timedelta(days=20)).date() if m % 15 == 0 else None,
        )
        PriceChange.objects.bulk_create(
            [
                PriceChange(
                    model=model,
                    prompt_price=Decimal("0.000001") * (1 + step),
                    completion_price=Decimal("0.000004") * (1 + step),
                    effective_from=now - dt.timedelta(days=20 * step + m % 5),
                )
                for step in range(5)
            ]
        )
    return {
        "first_user": made[0].pk,
        "first_key": keys[0].pk,
        "staff": made[0],
        "busy": made[1],
        "key": keys[2],
        "group": groups[3],
    }


def fill(rows: int, offset: int, ids: dict) -> float:
    """Add `rows` calls to the ledger (without its indexes, built again after) and rebuild the rollups."""
    from django.db import connection
    from django.utils import timezone

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute(LEDGER_CONSTRAINTS)
        constraints = cursor.fetchall()
        cursor.execute(LEDGER_INDEXES)
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE billing_ledgerentry DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        params = {
            "rows": rows,
            "offset": offset,
            "first_user": ids["first_user"],
            "first_key": ids["first_key"],
            "people": PEOPLE,
            "models": MODELS,
            "days": DAYS,
            "end": timezone.now(),
        }
        cursor.execute(FILL, params)
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE billing_ledgerentry ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(ROLLUP)
        # What autovacuum would have done by the time anyone looks: statistics, and the visibility map that
        # lets PostgreSQL answer from an index alone.
        for table in ("ledgerentry", *ROLLUPS):
            cursor.execute(f"VACUUM ANALYZE billing_{table}")
        cursor.execute("RESET work_mem")
        cursor.execute("RESET maintenance_work_mem")
    return time.perf_counter() - started


def pages(ids: dict) -> dict[str, str]:
    from django.urls import reverse

    busy, key = ids["busy"].username, ids["key"].pk
    explorer = reverse("console:explorer")
    return {
        "explorer 30 d": explorer,
        "explorer 90 d by group": f"{explorer}?preset=custom&start={{d90}}&end={{today}}&stack=group",
        "explorer 30 d, one person": f"{explorer}?person={busy}",
        "explorer 30 d, one group": f"{explorer}?group=group03",
        "explorer 30 d, one model": f"{explorer}?model=vendor1/model-1",
        "explorer 30 d, one key": f"{explorer}?key={key}",
        "explorer 90 d, one key by source": (
            f"{explorer}?preset=custom&start={{d90}}&end={{today}}&key={key}&stack=source"
        ),
        "explorer 30 d, one source": f"{explorer}?source=api",
        "explorer 30 d by source": f"{explorer}?stack=source",
        "explorer 90 d, group + source": (
            f"{explorer}?preset=custom&start={{d90}}&end={{today}}&group=group03&source=chat&stack=source"
        ),
        "explorer 90 d, group + model": (
            f"{explorer}?preset=custom&start={{d90}}&end={{today}}&group=group03&model=vendor1/model-1"
        ),
        "explorer CSV 30 d": reverse("console:explorer_csv"),
        "explorer CSV 30 d, one key": f"{reverse('console:explorer_csv')}?key={key}",
        "person page (busiest)": reverse("console:person", args=[busy]),
        "models page": reverse("console:models"),
        "anomalies page": reverse("console:anomalies"),
        "people page": reverse("console:people"),
        "people page 5": f"{reverse('console:people')}?page=5",
        "people search": f"{reverse('console:people')}?q=person1",
        "groups page": reverse("console:groups"),
        "group page": reverse("console:group", args=[ids["group"].pk]),
        "budgets page": reverse("console:budgets"),
        "audit log": reverse("console:audit"),
        "team page (billing)": reverse("account:team"),
        "team CSV (billing)": reverse("account:team_csv"),
        "usage page (own, top spender)": reverse("account:usage"),
    }


def consume(response) -> int:
    if response.streaming:
        return sum(len(chunk) for chunk in response.streaming_content)
    return len(response.content)


def time_pages(client, urls: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    import datetime as dt

    from billing.budgets import today

    fill_in = {"today": today().isoformat(), "d90": (today() - dt.timedelta(days=DAYS - 1)).isoformat()}
    results = {}
    for name, url in urls.items():
        url = url.format(**fill_in)
        samples = []
        for run in range(runs + 1):
            started = time.perf_counter()
            response = client.get(url)
            consume(response)
            assert response.status_code == 200, (url, response.status_code)
            if run:
                samples.append((time.perf_counter() - started) * 1000)
        results[name] = (percentile(samples, 50), percentile(samples, 95))
    return results


def csv_memory(client) -> tuple[float, int, float]:
    """Peak traced MB, bytes and seconds of the 90-day CSV of every rollup row."""
    import datetime as dt

    from django.urls import reverse

    from billing.budgets import today

    start = (today() - dt.timedelta(days=DAYS - 1)).isoformat()
    tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"{reverse('console:explorer_rows_csv')}?preset=custom&start={start}&end={today()}")
    size = consume(response)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, size, elapsed


def _rows(size: int) -> str:
    return f"{size / 1_000_000:g}M"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[1_000_000, 10_000_000],
        help="ledger sizes to time, comma-separated (devstack passes one value per option)",
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    database = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orweb")
    env = {**os.environ, "DATABASE_URL": with_database(database, DB_NAME), "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "orweb.settings")
    fresh_database(env, DB_NAME, ROOT)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    ids = people()
    client = Client(HTTP_HOST=settings.ALLOWED_HOSTS[0] if settings.ALLOWED_HOSTS else "localhost")
    client.force_login(ids["staff"])
    urls = pages(ids)
    table: dict[int, dict[str, tuple[float, float]]] = {}
    memory = {}
    loaded = 0
    for size in sorted(args.sizes):
        seconds = fill(size - loaded, loaded, ids)
        loaded = size
        with connection.cursor() as cursor:
            counts = []
            for rollup in ROLLUPS:
                cursor.execute(f"SELECT count(*) FROM billing_{rollup}")
                counts.append(f"{cursor.fetchone()[0]:,} {rollup}")
        print(f"{size:,} ledger rows ({', '.join(counts)} rows) loaded in {seconds:.0f} s", flush=True)
        table[size] = time_pages(client, urls, args.runs)
        memory[size] = csv_memory(client)
    sizes = sorted(table)
    head = f"{'page':34}" + "".join(f"{f'p50/p95 ms @{_rows(s)}':>22}" for s in sizes)
    print("\n" + head + ("   p95 ratio" if len(sizes) > 1 else ""))
    for name in urls:
        cells = "".join(f"{table[s][name][0]:>12.1f} /{table[s][name][1]:>7.1f}" for s in sizes)
        ratio = f"{table[sizes[-1]][name][1] / table[sizes[0]][name][1]:>12.2f}" if len(sizes) > 1 else ""
        print(f"{name:34}{cells}{ratio}")
    for size in sizes:
        peak, size_bytes, seconds = memory[size]
        label = f"rows CSV, 90 d x {PEOPLE} people @{_rows(size)}"
        print(f"{label}: {size_bytes / 2**20:.1f} MB in {seconds:.1f} s, peak {peak:.1f} MB traced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
