"""A gateway builds each version on its event loop in slices, between requests (models/steps.py)."""
import asyncio
import time

from app.gateway.keys import READ_MODEL
from app.gateway.model_updates import between_requests
from models.online.serving import serving_for, serving_for_in_steps
from models.steps import run_steps
from tests.gateway.conftest import follower_of, publish, shopper, versions


def other_work(seen):
    """Other work on the loop (a request meanwhile): what `seen()` returns at each of its turns."""
    turns = []

    async def turn():
        while True:
            turns.append(seen())
            await asyncio.sleep(0)

    return asyncio.create_task(turn()), turns


async def serving_the_first(client, n):
    """A follower of the test gateway serving the first of `n` versions, and the versions."""
    app = client.server.app
    shopper(app[READ_MODEL])
    follower = follower_of(app)
    found = versions(n)
    assert await publish(follower, found[0])
    return follower, found


async def test_the_loop_runs_other_work_between_the_steps_of_a_build(client):
    follower, (first, second) = await serving_the_first(client, 2)
    parent = follower.held[1][0]
    steps = sum(1 for _ in serving_for_in_steps(parent, second))
    assert steps > 3  # a build is many steps, not one call
    other, turns = other_work(lambda: 1)
    await asyncio.sleep(0)
    before = len(turns)
    built = await between_requests(serving_for_in_steps(parent, second), slice_s=0.0, share=1.0)
    other.cancel()
    assert len(turns) - before >= steps - 1  # a turn of the loop after every step
    whole = run_steps(serving_for_in_steps(parent, second))
    for history in (["a"], ["a", "x1"], ["x2"]):
        assert built.rank(history, 5) == whole.rank(history, 5) == serving_for(parent, second).rank(history, 5)


async def test_a_slice_runs_steps_until_its_time_is_up():
    ran = []

    def steps():
        for n in range(50):
            ran.append(n)
            yield
        return "built"

    task, turns = other_work(lambda: len(ran))
    assert await between_requests(steps(), slice_s=60.0) == "built"  # one slice: no turn in between
    task.cancel()
    assert ran == list(range(50)) and all(n in (0, 50) for n in turns)


async def test_a_build_takes_at_most_its_share_of_the_loop(monkeypatch):
    import app.gateway.model_updates as model_updates
    pauses = []
    real_sleep = asyncio.sleep

    async def recorded(seconds):
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(model_updates.asyncio, "sleep", recorded)

    def steps():
        for _ in range(6):
            until = time.perf_counter() + 0.002  # each step 2 ms of work: one a slice
            while time.perf_counter() < until:
                pass
            yield

    await between_requests(steps(), slice_s=0.001, share=0.25)
    assert len(pauses) == 6 and all(p >= 3 * 0.002 for p in pauses)  # the loop's for 3x what the build took


async def test_a_replaced_version_is_emptied_between_requests_then_freed(client, monkeypatch):
    """Dropped at once, a version's rows held the loop 4-5 ms (one C call; as long from a thread,
    which holds the GIL through it): release empties them a step at a time, with the loop's
    other work in between, and the version is freed."""
    import weakref

    import models.online.counts as counts
    import models.online.serving as serving

    import app.gateway.model_updates as model_updates

    monkeypatch.setattr(counts, "EMPTY_STEP", 1)  # a row a step: the test's versions are small
    monkeypatch.setattr(serving, "EMPTY_STEP", 1)
    paced = model_updates.between_requests  # a slice a step, so that each step shows
    monkeypatch.setattr(model_updates, "between_requests", lambda steps: paced(steps, slice_s=0.0))
    follower, (first, second, third) = await serving_the_first(client, 3)
    served = follower.held[1][0]
    rows = sum(len(t) for t in served.counts.neighbours)
    assert rows >= 2
    emptied = []
    real = type(served).emptied_in_steps

    def counted(model):
        for _ in real(model):
            emptied.append(sum(len(t) for t in model.counts.neighbours))
            yield

    monkeypatch.setattr(type(served), "emptied_in_steps", counted)
    other, turns = other_work(lambda: tuple(emptied))
    gone = weakref.ref(served)
    del served
    assert await publish(follower, second)
    other.cancel()
    assert gone() is None and list(follower.held) == [2]
    assert emptied[:rows] == list(range(rows - 1, -1, -1))  # a row a step
    assert len({t for t in turns if 0 < len(t) < rows}) >= rows - 1  # the loop ran between the steps
    # the version served is whole: it ranks as one built without any release
    assert follower.held[2][0].rank(["a"], 5) == serving_for(serving_for(None, first), second).rank(["a"], 5)
    assert await publish(follower, third)  # and the next delta builds on it


async def test_a_version_a_request_still_holds_is_left_whole(client):
    """A request that ranks again after an await (a filtered one) keeps the version it began with."""
    follower, (first, second) = await serving_the_first(client, 2)
    held_by_a_request = follower.held[1][0]
    before = held_by_a_request.rank(["a"], 5)
    rows = [dict(t) for t in held_by_a_request.counts.neighbours]
    assert any(rows)
    assert await publish(follower, second)
    assert list(follower.held) == [2]
    assert held_by_a_request.rank(["a"], 5) == before == serving_for(None, first).rank(["a"], 5)
    assert held_by_a_request.counts.neighbours == rows
