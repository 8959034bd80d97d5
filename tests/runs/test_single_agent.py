"""Single agent runs: from a prompt, continuing a context, and after parallel branches."""

from __future__ import annotations

import pytest

from orchestrator import Client, InvalidRunError, Message, RunFailedError
from tests.helpers import scripted


def test_run_agent_returns_output_and_the_context_to_continue(client: Client) -> None:
    agent = scripted("assistant")
    first = client.run_agent(agent, "What is a chord?", session_id="s-1").result(30)
    assert first.output.succeeded() and "What is a chord?" in first.output.answer
    assert [m.role for m in first.context] == ["user", "assistant"]
    assert first.session_id == "s-1"
    followup = [*first.context, Message(role="user", content="And a group?")]
    second = client.run_agent(agent, context=followup).result(30)
    assert [m.role for m in second.context] == ["user", "assistant", "user", "assistant"]
    assert "And a group?" in second.output.answer


def test_selected_branch_context_continues_as_a_single_run(client: Client) -> None:
    branches = client.parallel_branches(
        [scripted("a", answer="first"), scripted("b", answer="second")], prompt="q"
    ).result(30)
    followup = [*branches.selected_context, Message(role="user", content="more")]
    result = client.run_agent(scripted("c"), context=followup).result(30)
    assert result.context[: len(followup)] == followup


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ([], "context must not be empty"),
        ([Message(role="assistant", content="hi")], "must not end on an assistant message"),
    ],
)
def test_continue_mode_preconditions_are_checked_at_submit(
    client: Client, context: list[Message], message: str
) -> None:
    with pytest.raises(InvalidRunError, match=message):
        client.run_agent(scripted("a"), context=context)


def test_a_failing_agent_fails_its_run_with_the_output_attached(client: Client) -> None:
    handle = client.run_agent(scripted("a", fail_on="boom"), "boom")
    with pytest.raises(RunFailedError, match="scripted failure") as failed:
        handle.result(30)
    assert failed.value.result.output.outcome == "error"
