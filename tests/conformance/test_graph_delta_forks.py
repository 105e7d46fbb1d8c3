"""A `DeltaChannel` state through forks, time travel, `update_state` and `bulk_update_state`,
on every saver against `InMemorySaver`: each branch must rebuild from its own ancestors."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import StateUpdate

from .graphs import new_thread
from .harness import Harness
from .reference import assert_same_as_reference, stored
from .test_graph_delta import counting_graph, run_config

pytest.importorskip("langgraph.channels.delta", reason="this LangGraph has no DeltaChannel")


async def test_delta_channel_forks_and_updates(h: Harness) -> None:
    async def scenario(r: Harness) -> Any:
        config = run_config(new_thread())
        graph = counting_graph().compile(checkpointer=r.saver)
        results = [await r.invoke(graph, {"items": [], "n": 0, "stop": 8}, config)]
        history = await r.state_history(graph, config)
        at = {s.metadata["step"]: s for s in history}
        # Time travel from step 2, a fork with an edit at step 5, a copy of step 6.
        results.append(await r.invoke(graph, None, at[2].config))
        edited = await r.update_state(graph, at[5].config, {"items": [100], "stop": 9})
        results.append(await r.invoke(graph, None, edited))
        copied = await r.update_state(graph, at[6].config, None, as_node="__copy__")
        results.append(await r.invoke(graph, None, copied))
        # Bulk updates on top of the newest checkpoint, then more steps.
        bulk = await r.bulk_update_state(
            graph,
            config,
            [
                [StateUpdate({"items": [200]}, as_node="step")],
                [StateUpdate({"items": [201], "stop": 12}, as_node="step")],
            ],
        )
        results.append(await r.invoke(graph, None, bulk))
        results.append(await r.invoke(graph, {"stop": 14}, config))
        return {
            "results": results,
            "history": await r.state_history(graph, config),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["results"][0]["items"] == list(range(8))
    # The edited branch rebuilt from its fork point, not from the newest branch.
    assert seen["results"][2]["items"] == [0, 1, 2, 3, 4, 100, 5, 6, 7, 8]
    assert seen["results"][-1]["items"] == [*range(8), 200, 201, *range(8, 14)]
