"""Thread ids, node names and run metadata that a store could misread, on every saver
against `InMemorySaver`: glob and LIKE wildcards, backslashes, quotes, non-ASCII, in thread
ids and in subgraph namespaces; metadata from the run's config, filtered in the history."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import START, StateGraph

from .graphs import new_thread, thread_config
from .harness import Harness
from .reference import assert_same_as_reference, stored

# Suffixes that are patterns somewhere: Redis glob (`*?[]\`), SQL LIKE (`%_\`), quotes.
ODD = ["*", "?", "[ab]", "%", "_", "\\", "'\"", "ü日本", " "]


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def odd_graph(sub_name: str) -> StateGraph[Any]:
    """START -> <sub_name>(inner) -> after: a subgraph whose namespace holds `sub_name`."""

    def inner(state: State) -> dict[str, Any]:
        return {"log": ["inner"]}

    child = StateGraph(State)
    child.add_node("inner", inner)
    child.add_edge(START, "inner")

    def after(state: State) -> dict[str, Any]:
        return {"log": [f"after{len(state['log'])}"]}

    builder = StateGraph(State)
    builder.add_node(sub_name, child.compile())
    builder.add_node("after", after)
    builder.add_edge(START, sub_name)
    builder.add_edge(sub_name, "after")
    return builder


async def test_odd_thread_ids_namespaces_and_metadata(h: Harness) -> None:
    async def scenario(r: Harness) -> Any:
        base = new_thread()
        # `base` itself matches every pattern below in some store's syntax.
        threads = [base, *(f"{base}{odd}" for odd in ODD)]
        observed: dict[str, Any] = {}
        for i, thread in enumerate(threads):
            graph = odd_graph(f"sub{ODD[i - 1] if i else ''}").compile(checkpointer=r.saver)
            config: Any = {
                **thread_config(thread),
                "metadata": {"who": ODD[i - 1] if i else "base", "n": i, "nested": {"i": [i]}},
            }
            observed[f"result{i}"] = await r.invoke(graph, {"log": [thread]}, config)
        graph = odd_graph("sub").compile(checkpointer=r.saver)
        for i, thread in enumerate(threads):
            config = thread_config(thread)
            observed[f"stored{i}"] = await stored(r, config)
            observed[f"who{i}"] = await r.state_history(
                graph, config, filter={"who": ODD[i - 1] if i else "base", "n": i}
            )
            observed[f"nested{i}"] = await r.state_history(
                graph, config, filter={"nested": {"i": [i]}}, limit=2
            )
        # Deleting the threads whose ids are patterns leaves every other thread whole.
        for thread in threads[1:5]:
            await r.delete_thread(thread)
        observed["after_delete"] = [await stored(r, thread_config(t)) for t in threads]
        return observed

    seen = await assert_same_as_reference(h, scenario)
    assert [bool(rows) for rows in seen["after_delete"]] == [True] + [False] * 4 + [True] * 5
    assert len(seen["who0"]) == 4
