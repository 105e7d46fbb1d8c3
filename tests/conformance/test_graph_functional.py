"""LangGraph's functional API (`@entrypoint`, `@task`) on every saver, against `InMemorySaver`.

A task's result is stored as a write of the checkpoint its entrypoint runs from; on resume
LangGraph replays it from the saver instead of running the task again. `previous` is the
value the last run saved, read back from the thread's latest checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic
import pytest
from langgraph.func import entrypoint, task
from langgraph.types import Command, interrupt

from checkpoint_base.serde import DisallowedTypeError

from ..langgraph_limits import skip_async_interrupts
from .graphs import Runs, new_thread, thread_config
from .harness import Harness
from .reference import assert_same_as_reference, stored


def approval_workflow(saver: Any, runs: Runs) -> Any:
    """Doubles 0..n-1 in tasks, asks for a name in a task, then asks for approval."""

    @task
    def double(x: int) -> int:
        runs.hit("double")
        return 2 * x

    @task
    def ask(total: int) -> str:
        runs.hit("ask")
        return f"{interrupt({'name for': total})}"

    @entrypoint(checkpointer=saver)
    def workflow(n: int) -> dict[str, Any]:
        runs.hit("workflow")
        doubled = [double(i).result() for i in range(n)]
        name = ask(sum(doubled)).result()
        approved = interrupt({"approve": name})
        return {"doubled": doubled, "name": name, "approved": approved}

    return workflow


async def test_functional_tasks_replay_across_interrupts(h: Harness) -> None:
    skip_async_interrupts(h.is_async)

    async def scenario(r: Harness) -> Any:
        runs = Runs()
        config = thread_config(new_thread())
        results = [await r.invoke(approval_workflow(r.saver, runs), 3, config)]
        paused = await r.get_state(approval_workflow(r.saver, runs), config)
        # Each resume compiles the workflow anew: it knows only what the saver stored.
        for answer in ("Ada", True):
            fresh = approval_workflow(r.saver, runs)
            results.append(await r.invoke(fresh, Command(resume=answer), config))
        final = await r.get_state(approval_workflow(r.saver, runs), config)
        history = await r.state_history(approval_workflow(r.saver, runs), config)
        return {
            "results": results,
            "runs": runs.snapshot(),
            "paused": paused,
            "final": final,
            "history": history,
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["results"][-1] == {"doubled": [0, 2, 4], "name": "Ada", "approved": True}
    # The doubles ran once; `ask` ran again only to return its resume value.
    assert seen["runs"] == {"workflow": 3, "double": 3, "ask": 2}


def counter_workflow(saver: Any) -> Any:
    """Adds each input to the total the previous run saved; returns a text, saves a number."""

    @entrypoint(checkpointer=saver)
    def counter(step: int, *, previous: int | None = None) -> entrypoint.final[str, int]:
        total = (previous or 0) + step
        return entrypoint.final(value=f"total {total} (was {previous})", save=total)

    return counter


async def test_functional_previous_and_final_across_runs(h: Harness) -> None:
    async def scenario(r: Harness) -> Any:
        config = thread_config(new_thread())
        results = [await r.invoke(counter_workflow(r.saver), step, config) for step in (1, 2, 3)]
        graph = counter_workflow(r.saver)
        history = await r.state_history(graph, config)
        # Time travel: a run from the first run's last checkpoint sees its saved total.
        first_end = next(s for s in history if s.metadata["step"] == 1)
        results.append(await r.invoke(graph, None, first_end.config))
        results.append(await r.invoke(graph, 10, first_end.config))
        return {
            "results": results,
            "state": await r.get_state(graph, config),
            "history": await r.state_history(graph, config),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["results"][:3] == ["total 1 (was None)", "total 3 (was 1)", "total 6 (was 3)"]
    assert seen["results"][4] == "total 11 (was 1)"


def parallel_workflow(saver: Any, runs: Runs) -> Any:
    """Three tasks in parallel, two of which interrupt; the entrypoint joins their results."""

    @task
    def review(name: str) -> str:
        runs.hit(name)
        if name == "auto":
            return "auto:ok"
        return f"{name}:{interrupt({'review': name})}"

    @entrypoint(checkpointer=saver)
    def workflow(names: list[str]) -> list[str]:
        runs.hit("workflow")
        futures = [review(name) for name in names]
        return [f.result() for f in futures]

    return workflow


@pytest.mark.parametrize("durability", ["exit", "sync"])
async def test_functional_parallel_interrupts_resumed_by_id(h: Harness, durability: str) -> None:
    skip_async_interrupts(h.is_async)

    async def scenario(r: Harness) -> Any:
        runs = Runs()
        config = thread_config(new_thread())
        first = await r.invoke(
            parallel_workflow(r.saver, runs), ["ann", "auto", "bob"], config, durability=durability
        )
        # Resume whatever is pending, by interrupt id, until the workflow finishes: the
        # entrypoint stops at the first failed future, so one interrupt shows at a time.
        paused, results = [], []
        for _ in range(3):
            state = await r.get_state(parallel_workflow(r.saver, runs), config)
            if not state.interrupts:
                break
            paused.append(state)
            answers = {i.id: f"yes-{i.value['review']}" for i in state.interrupts}
            fresh = parallel_workflow(r.saver, runs)
            results.append(
                await r.invoke(fresh, Command(resume=answers), config, durability=durability)
            )
        graph = parallel_workflow(r.saver, runs)
        return {
            "first": first,
            "paused": paused,
            "results": results,
            "runs": runs.snapshot(),
            "history": await r.state_history(graph, config),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["results"][-1] == ["ann:yes-ann", "auto:ok", "bob:yes-bob"]
    assert seen["runs"]["auto"] == 1


@dataclass(frozen=True)
class Quote:
    sku: str
    price: float


class Order(pydantic.BaseModel):
    sku: str
    qty: int


TYPES = [(Quote.__module__, "Quote"), (Order.__module__, "Order")]


def quoting_workflow(saver: Any) -> Any:
    """Takes a pydantic `Order`, quotes it in a task returning a dataclass, asks to confirm."""

    @task
    def quote(order: Order) -> Quote:
        return Quote(order.sku, 2.5 * order.qty)

    @entrypoint(checkpointer=saver)
    def flow(order: Order) -> dict[str, Any]:
        q = quote(order).result()
        return {"quote": q, "order": order, "ok": interrupt({"price": q.price})}

    return flow


async def test_functional_user_types_need_an_allowlist(h: Harness) -> None:
    """A functional workflow registers no types with the serializer (a `StateGraph` registers
    its state schema's): its inputs and task results are rebuilt only once allowed.

    LangGraph's `InMemorySaver` rebuilds them with a warning that this "will be blocked in a
    future version" (with `LANGGRAPH_STRICT_MSGPACK=true` it blocks now, handing back a dict);
    the savers of this package refuse already, naming the type and the fix.
    """
    skip_async_interrupts(h.is_async)
    config = thread_config(new_thread())
    await h.invoke(quoting_workflow(h.saver), Order(sku="a", qty=2), config)
    with pytest.raises(DisallowedTypeError, match=r"(Order|Quote).*with_allowlist"):
        await h.invoke(quoting_workflow(h.saver), Command(resume=True), config)

    async def scenario(r: Harness) -> Any:
        allowed = r.saver.with_allowlist(TYPES)
        config = thread_config(new_thread())
        first = await r.invoke(quoting_workflow(allowed), Order(sku="b", qty=4), config)
        done = await r.invoke(quoting_workflow(allowed), Command(resume=True), config)
        checked = Harness(r.target, r.flavor, allowed)
        graph = quoting_workflow(allowed)
        return {
            "first": first,
            "done": done,
            "history": await checked.state_history(graph, config),
            "stored": await stored(checked, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["done"]["quote"] == {"Quote": {"sku": "b", "price": 10.0}}
