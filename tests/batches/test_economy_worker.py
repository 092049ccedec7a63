"""An economy job end to end with a real Celery worker on the batches queue and the simulator's Batch API:
Run holds the job against the budget, the worker submits it as one upstream batch, polls it, and settles
each line at the discounted price the Batch API reported. The ledger holds exactly what the simulator
billed, every hold is released, and the budget was never exceeded."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.urls import reverse

from batches.models import BatchJob, BatchLine
from billing.budgets import set_budget
from billing.models import BudgetPeriod, Hold, LedgerEntry
from openrouter.simulator.batch_api import BATCH_RATE
from tests.batches.test_api_sdk import worker  # noqa: F401 (the fixture)
from tests.batches.test_pages import jsonl, upload
from tests.helpers.billing import assert_ledger_matches_simulator
from tests.helpers.personas import streamed_body

pytestmark = pytest.mark.django_db(transaction=True)
TEXT = "meta-llama/llama-3.1-8b-instruct"


def test_an_economy_job_runs_through_the_batch_api_with_a_real_worker(worker, simulator, catalog, owner, owner_client):  # noqa: F811
    simulator.configure(batch_delay=0.5)
    limit = Decimal("0.05")
    set_budget(user=owner, amount=limit)
    prompts = jsonl(*({"custom_id": f"q{n}", "prompt": f"question {n}"} for n in range(5)))
    assert upload(owner_client, prompts, model=TEXT, max_tokens="200", economy="1").status_code == 302
    job = BatchJob.objects.get()
    assert job.economy

    assert owner_client.post(reverse("batches:run", args=[job.id])).status_code == 302
    held_at_most = Decimal(0)
    deadline = time.monotonic() + 90
    while (job := BatchJob.objects.get(pk=job.pk)).status != "completed":
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, f"still {job.status} ({job.remote_state}) after 90 s"
        for period in BudgetPeriod.objects.all():
            assert period.spent + period.held <= limit
            held_at_most = max(held_at_most, period.held)
        time.sleep(0.05)

    assert job.remote_id and job.remote_state == "settled" and (job.completed, job.failed) == (5, 0)
    assert held_at_most > 0  # the lines were held while the batch was upstream
    billed = simulator.billed()
    sim_model = simulator.app.state.sim.models[TEXT]
    for line in BatchLine.objects.filter(job=job):
        usage = line.response["usage"]
        list_price = usage["prompt_tokens"] * sim_model.price("prompt") + usage["completion_tokens"] * sim_model.price(
            "completion"
        )
        assert line.cost == billed[line.generation_id] == list_price * BATCH_RATE
    assert set(LedgerEntry.objects.values_list("source", flat=True)) == {"batch"}
    assert LedgerEntry.objects.aggregate(total=Sum("cost"))["total"] == job.cost == sum(billed.values())
    assert not Hold.objects.filter(released_at=None).exists()
    assert_ledger_matches_simulator(simulator)

    page = owner_client.get(reverse("batches:job", args=[job.id])).content.decode()
    assert "economy mode" in page and 'data-testid="done">5<' in page
    results = streamed_body(owner_client.get(reverse("batches:results", args=[job.id])))
    assert results.count(b"\n") == 5
