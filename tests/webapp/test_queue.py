"""The fair queue's order and a queued run's standing, from the run rows alone (the worker
processes that follow this order are in tests/integration/test_execution_core.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.catalog.models import Membership
from webapp.runs.models import Run
from webapp.runs.queue import fair_order, ready_runs, standing, take_next

pytestmark = pytest.mark.django_db


@pytest.fixture
def bea(django_user_model, workspace):
    user = django_user_model.objects.create_user("bea", password="bea-pass")
    Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.EDITOR)
    return user


def queued(person, dataset, checkpoint, kind=Run.Kind.COMPARE, **params) -> Run:
    """A run row in the queue (not sent to any broker)."""
    params = {"n": Run.objects.count(), **params}
    return Run.objects.create(
        kind=kind,
        params=params,
        request_key=Run.key_for(kind, **params),
        workspace=dataset.workspace,
        dataset=dataset,
        checkpoint=checkpoint,
        checkpoint_b=checkpoint,
        created_by=person,
    )


def test_people_take_turns_and_each_persons_runs_keep_their_order(owner, bea, digits, ckpt_a):
    mine = [queued(owner, digits, ckpt_a) for _ in range(30)]
    theirs = queued(bea, digits, ckpt_a)
    order = list(fair_order(ready_runs("cpu")))
    # Nobody served yet: the oldest first, then the other person, then the rest in order.
    assert [r.pk for r in order] == [mine[0].pk, theirs.pk, *[r.pk for r in mine[1:]]]

    assert take_next("cpu") == mine[0]  # now running: the other person goes next
    assert next(fair_order(ready_runs("cpu"))) == theirs


def test_interactive_runs_go_before_batch_work(owner, bea, digits, ckpt_a):
    batch = [queued(owner, digits, ckpt_a) for _ in range(3)]
    alignment = queued(owner, digits, ckpt_a, kind=Run.Kind.ALIGN)
    one_family = queued(bea, digits, ckpt_a, kind=Run.Kind.PROBE, families=[["x", [0]]])
    many = queued(bea, digits, ckpt_a, kind=Run.Kind.PROBE, families=[["x", [0]], ["y", [0]]])
    assert next(fair_order(ready_runs("cpu"))) == alignment
    assert [r.pk for r in fair_order(ready_runs("gpu"))] == [one_family.pk, many.pk]
    assert batch[0] in list(fair_order(ready_runs("cpu")))


def test_runs_waiting_for_others_are_not_ready(owner, digits, ckpt_a):
    first = queued(owner, digits, ckpt_a, kind=Run.Kind.EXTRACT)
    second = queued(owner, digits, ckpt_a)
    second.depends_on.add(first)
    assert ready_runs("cpu") == []
    assert standing(second).to_json() == {
        "position": None,
        "waiting_for": 1,
        "estimated_start": None,
    }


def test_standing_estimates_from_recent_runs(owner, bea, digits, ckpt_a):
    now = timezone.now()
    for i in range(3):  # three finished comparisons of 40 s each
        done = queued(owner, digits, ckpt_a)
        Run.objects.filter(pk=done.pk).update(
            state=Run.State.SUCCEEDED,
            started_at=now - timedelta(seconds=100 + i),
            finished_at=now - timedelta(seconds=60 + i),
        )
    mine = [queued(owner, digits, ckpt_a) for _ in range(3)]
    theirs = queued(bea, digits, ckpt_a)
    found = standing(theirs)
    assert found.position == 1  # bea was never served; the owner was, a minute ago
    assert found.estimated_start - now < timedelta(seconds=5)
    assert found.starts_in == "in under a minute"  # not "in about 0 minutes"
    last = standing(mine[2])
    assert last.position == 4
    expected = timedelta(seconds=3 * 40)  # three 40-second runs ahead, one worker
    assert abs(last.estimated_start - now - expected) < timedelta(seconds=5)
    assert last.starts_in == "in about 1\xa0minute"  # just under two minutes from now
    assert standing(Run.objects.filter(state=Run.State.SUCCEEDED).first()) is None


def test_the_api_and_the_run_page_say_where_a_run_stands(api, client, owner, digits, ckpt_a):
    run = queued(owner, digits, ckpt_a, pooling="mean", seed=3)
    answer = api.get(f"/api/v1/runs/{run.pk}/").json()
    assert answer["queue"]["position"] == 1 and answer["queue"]["waiting_for"] == 0
    assert answer["queue"]["estimated_start"]
    later = queued(owner, digits, ckpt_a)
    listed = api.get("/api/v1/runs/").json()
    listed = listed.get("results", listed)
    positions = {r["id"]: r["queue"]["position"] for r in listed}
    assert positions == {run.pk: 1, later.pk: 2}
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "number 1 in line" in page and "estimated start" in page
    assert "(in under a minute)" in page  # nothing runs before it
    # The parameters with what each means, from the kind's spec.
    assert "seed of the run&#x27;s random choices" in page
