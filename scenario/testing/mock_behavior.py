"""Deterministic answers of the mock model server, kept free of any I/O.

Everything here is a pure function of the parsed request body and a
:class:`MockBehavior`, so it can be unit-tested without HTTP and so the server
handler stays a thin shell. Nothing in this module imports aiohttp or litellm:
``import scenario.testing`` must stay cheap because test suites import it at
collection time.

Three kinds of callers talk to the mock, and each gets a reply shaped for it:

* the **judge** (its request offers a ``finish_test`` tool) gets a
  ``continue_test`` or ``finish_test`` tool call; offered ``read_messages``
  (a condensed transcript), it first reads message 0 once;
* the **user simulator** (a system message says "You are a user simulator")
  gets a short plain-text user turn that changes with each turn;
* the **agent** under test (anything else) gets an echo of the last user
  message; when its request offers ``tools`` (and ``tool_choice`` is not
  ``"none"``) and the last message is not a tool result, it gets a call to the
  first (or the forced) tool instead, with each required string argument set
  to the last user message, as a tool-calling model would; a red-team reply scorer (its prompt asks to "rate how far this
  reply advances the attack") gets ``{"score": N, "adaptation": ...}`` where N
  comes from a ``[mock:score=N]`` marker in the scored reply (default 1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Role = Literal["judge", "user", "agent"]

ROLES: tuple[Role, ...] = ("user", "judge", "agent")

# Only these marker names change the server's behaviour for one request.
# ``[mock:fail]`` / ``[mock:inconclusive]`` are criterion markers and are read
# by the judge logic, not here.
_REQUEST_MARKER_RE = re.compile(r"\[mock:(error|hang|malformed|delay|turns)(?:=([^\]\s]*))?\]")
# Any ``[mock:...]`` token. Stripped from text the mock echoes back, so that a
# marker aimed at one request does not leak into the next request's messages
# (e.g. the user simulator echoing a description that holds ``[mock:error=500]``
# would otherwise make the agent's request fail too).
_ANY_MARKER_RE = re.compile(r"\[mock:[^\]]*\]")

_TRANSCRIPT_AGENT_RE = re.compile(r"<message\s+role\s*=\s*[\"']assistant[\"']")
_TRANSCRIPT_ANY_RE = re.compile(r"<message\s+role\s*=")
# langwatch-scenario's judge sends ``<transcript>`` with one ``role: content`` line per message.
_TRANSCRIPT_LINE_AGENT_RE = re.compile(r"^\s*assistant:", re.MULTILINE)

_USER_SIMULATOR_PHRASE = "you are a user simulator"
# langwatch-scenario's simulator prompt, so the peer can be benchmarked against this mock.
_PEER_USER_SIMULATOR_PHRASE = "you are pretending to be a user"
_SCORER_PHRASE = "rate how far this reply advances the attack"
_SCORE_MARKER_RE = re.compile(r"\[mock:score=(\d+)\]")
_DESCRIPTION_TAG_RE = re.compile(
    r"<(scenario|description|situation)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL
)
_DESCRIPTION_LABEL_RE = re.compile(
    r"^[ \t#*_-]*(?:scenario|description|situation)(?:[ \t]+description)?[ \t*_]*:[ \t]*(\S.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE_RE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")

DESCRIPTION_WORDS = 12
AGENT_ECHO_CHARS = 200


@dataclass
class MockBehavior:
    """How the mock model server answers. All fields have safe defaults.

    The server reads its behaviour once per request, so assigning a new
    ``MockBehavior`` to ``server.behavior`` takes effect for the next request.
    """

    latency: float = 0.0
    """Seconds every successful response waits (``asyncio.sleep``) before answering."""

    judge_turns: int = 2
    """The judge finishes once the transcript holds this many agent replies.
    Overridden per request by a ``[mock:turns=N]`` marker."""

    fail_marker: str = "[mock:fail]"
    """A criterion whose text contains this is judged ``failed``."""

    inconclusive_marker: str = "[mock:inconclusive]"
    """A criterion whose text contains this is judged ``inconclusive``."""

    failing_criteria: list[str] = field(default_factory=list)
    """Criteria whose text contains any of these substrings (case-insensitive)
    are judged ``failed``."""

    rate_limit_above: int | None = None
    """When set, a request arriving while this many or more requests are already
    in flight gets a 429 with a ``Retry-After`` header."""

    retry_after: float = 0.5
    """Seconds advertised in ``Retry-After`` on 429 answers that don't name their own."""

    error_rate: float = 0.0
    """Fraction (0..1) of requests answered with a 500, drawn from a pseudo-random
    generator seeded with ``seed`` so a run is reproducible."""

    seed: int = 0
    """Seed for ``error_rate``."""

    context_window: int | None = None
    """When set, a request whose prompt is estimated (4 characters a token) above this many tokens
    gets OpenAI's 400 ``context_length_exceeded`` error, as a model with that window would."""

    def __post_init__(self) -> None:
        # Fail at construction, not deep inside a request handler thread.
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if self.judge_turns < 0:
            raise ValueError("judge_turns must be >= 0")
        if self.rate_limit_above is not None and self.rate_limit_above < 0:
            raise ValueError("rate_limit_above must be >= 0 or None")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.context_window is not None and self.context_window < 1:
            raise ValueError("context_window must be >= 1 or None")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not self.fail_marker or not self.inconclusive_marker:
            raise ValueError("fail_marker and inconclusive_marker must be non-empty")
        self.failing_criteria = list(self.failing_criteria)

    def with_changes(self, **changes: Any) -> MockBehavior:
        """Return a validated copy with some fields replaced."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown MockBehavior field(s): {', '.join(sorted(unknown))}")
        values.update(changes)
        return MockBehavior(**values)


@dataclass
class RequestMarkers:
    """Per-request overrides found in the message contents (first occurrence wins)."""

    error_status: int | None = None
    hang: bool = False
    malformed: bool = False
    delay: float = 0.0
    turns: int | None = None


@dataclass
class ChatRequest:
    """The parts of a chat-completions request body the mock cares about."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: Any
    stream: bool
    include_usage: bool
    role: Role
    text: str
    """All message text joined: used for marker scanning and token estimates."""
    prompt_chars: int
    markers: RequestMarkers


@dataclass
class MockReply:
    """What the mock answers: either text ``content`` or one tool call."""

    content: str | None = None
    tool_name: str | None = None
    tool_arguments: str | None = None

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_name else "stop"

    @property
    def completion_chars(self) -> int:
        return len(self.tool_arguments or "") if self.tool_name else len(self.content or "")


class BadRequest(ValueError):
    """The body is not a usable chat-completions request (answered with a 400)."""


# --------------------------------------------------------------------------- parsing


def content_text(content: Any) -> str:
    """Flatten an OpenAI message ``content`` (string, None or list of parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def _tool_call_text(message: dict[str, Any]) -> str:
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return ""
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            out.append(str(fn.get("name") or ""))
            out.append(str(fn.get("arguments") or ""))
    return "\n".join(out)


def parse_markers(text: str) -> RequestMarkers:
    """Read ``[mock:error=NNN]``, ``[mock:hang]``, ``[mock:malformed]``,
    ``[mock:delay=S]`` and ``[mock:turns=N]`` from ``text``.

    Malformed values (``[mock:delay=abc]``) are ignored rather than raising,
    because a typo in a test's description should not crash the mock server.
    """
    markers = RequestMarkers()
    if "[mock:" not in text:  # fast path: almost every request
        return markers
    seen: set[str] = set()
    for match in _REQUEST_MARKER_RE.finditer(text):
        name, value = match.group(1), match.group(2)
        if name in seen:
            continue
        try:
            if name == "error" and value:
                status = int(value)
                if 400 <= status <= 599:
                    markers.error_status = status
            elif name == "hang":
                markers.hang = True
            elif name == "malformed":
                markers.malformed = True
            elif name == "delay" and value:
                markers.delay = max(0.0, float(value))
            elif name == "turns" and value:
                markers.turns = max(0, int(value))
            else:
                continue
        except ValueError:
            continue
        seen.add(name)
    return markers


def _function_names(tools: list[dict[str, Any]]) -> set[str]:
    names = set()
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    return names


def classify(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Role:
    """Decide who is asking: judge, user simulator, or agent (see module doc)."""
    if tools and _function_names(tools) & {"finish_test", "make_verdict"}:
        return "judge"  # make_verdict: langwatch-scenario's judge deciding whether to go on
    for message in messages:
        if message.get("role") in ("system", "developer"):
            text = content_text(message.get("content")).lower()
            if _USER_SIMULATOR_PHRASE in text or _PEER_USER_SIMULATOR_PHRASE in text:
                return "user"
    return "agent"


def parse_request(body: bytes) -> ChatRequest:
    """Parse and validate a raw request body. Raises :class:`BadRequest`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is a required property and must be a non-empty array.")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("Every element of 'messages' must be an object.")
    tools = data.get("tools") or []
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be an array.")
    stream_options = data.get("stream_options") or {}

    chunks = []
    for message in messages:
        chunks.append(content_text(message.get("content")))
        if message.get("tool_calls"):
            chunks.append(_tool_call_text(message))
    text = "\n".join(chunks)
    prompt_chars = len(text)
    if tools:
        prompt_chars += len(json.dumps(tools))

    return ChatRequest(
        model=str(data.get("model") or "mock-model"),
        messages=messages,
        tools=tools,
        tool_choice=data.get("tool_choice"),
        stream=bool(data.get("stream")),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
        role=classify(messages, tools),
        text=text,
        prompt_chars=prompt_chars,
        markers=parse_markers(text),
    )


# --------------------------------------------------------------------------- replies


def strip_markers(text: str) -> str:
    return _ANY_MARKER_RE.sub("", text) if "[mock:" in text else text


def _squash(text: str) -> str:
    return " ".join(strip_markers(text).split())


def estimate_tokens(chars: int) -> int:
    """Roughly four characters per token, never zero, so costs are non-zero."""
    return max(1, chars // 4)


def build_reply(request: ChatRequest, behavior: MockBehavior) -> MockReply:
    """The deterministic answer for ``request`` (faults are decided elsewhere)."""
    if request.role == "judge":
        return judge_reply(request, behavior)
    if request.role == "user":
        return MockReply(content=user_simulator_reply(request.messages))
    if _SCORER_PHRASE in request.text.lower():
        return MockReply(content=scorer_reply(request.text))
    call = agent_tool_call(request)
    if call is not None:
        return call
    return MockReply(content=agent_reply(request.messages))


# ----- judge


def count_agent_replies(messages: list[dict[str, Any]]) -> int:
    """Agent replies in the judge's transcript.

    The judge receives the conversation serialised as ``<message role="...">``
    elements in its non-system messages; count the assistant ones. If a judge
    sends the conversation as real chat messages instead (no such elements),
    count the assistant-role messages.
    """
    count = 0
    markup_seen = False
    for message in messages:
        if message.get("role") in ("system", "developer"):
            continue
        text = content_text(message.get("content"))
        if "<message" in text and _TRANSCRIPT_ANY_RE.search(text):
            markup_seen = True
            count += len(_TRANSCRIPT_AGENT_RE.findall(text))
        elif "<transcript>" in text:
            markup_seen = True
            count += len(_TRANSCRIPT_LINE_AGENT_RE.findall(text.split("<transcript>", 1)[1].split("</transcript>", 1)[0]))
    if markup_seen:
        return count
    return sum(1 for m in messages if m.get("role") == "assistant")


def _forced_function(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
    return None


def _finish_test_criteria(tools: list[dict[str, Any]]) -> dict[str, str]:
    """``{criterion key: criterion text}`` from the finish_test tool's JSON schema."""
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or fn.get("name") != "finish_test":
            continue
        params = fn.get("parameters") or {}
        criteria = ((params.get("properties") or {}).get("criteria") or {}).get("properties") or {}
        if not isinstance(criteria, dict):
            return {}
        out = {}
        for key, schema in criteria.items():
            text = schema.get("description") if isinstance(schema, dict) else None
            out[str(key)] = str(text) if text is not None else str(key)
        return out
    return {}


def criterion_status(text: str, behavior: MockBehavior) -> str:
    """``failed`` beats ``inconclusive`` beats ``passed``."""
    if behavior.fail_marker in text:
        return "failed"
    if behavior.failing_criteria:
        lowered = text.lower()
        if any(s and s.lower() in lowered for s in behavior.failing_criteria):
            return "failed"
    if behavior.inconclusive_marker in text:
        return "inconclusive"
    return "passed"


_CRITERION_REASONS = {
    "passed": "Mock judge: the criterion {text!r} is met by the conversation.",
    "failed": "Mock judge: the criterion {text!r} is not met (configured to fail).",
    "inconclusive": "Mock judge: the criterion {text!r} cannot be decided (configured as inconclusive).",
}


def judge_reply(request: ChatRequest, behavior: MockBehavior) -> MockReply:
    names = _function_names(request.tools)
    agent_replies = count_agent_replies(request.messages)
    turns = request.markers.turns if request.markers.turns is not None else behavior.judge_turns
    forced = _forced_function(request.tool_choice)

    if "read_messages" in names and forced is None and not any(m.get("role") == "tool" for m in request.messages):
        # A judge reading a condensed transcript looks something up once before it rules.
        return MockReply(tool_name="read_messages", tool_arguments=json.dumps({"indices": [0]}))
    if forced == "continue_test" and "continue_test" in names:
        finish = False
    else:
        finish = forced == "finish_test" or agent_replies >= turns or "continue_test" not in names
    if not finish:
        return MockReply(tool_name="continue_test", tool_arguments="{}")
    if "finish_test" not in names and "make_verdict" in names:
        # langwatch-scenario asks "go on or rule?" first, then for the verdict in a second call.
        return MockReply(tool_name="make_verdict", tool_arguments="{}")

    verdicts: dict[str, dict[str, str]] = {}
    tally = {"passed": 0, "failed": 0, "inconclusive": 0}
    for key, text in _finish_test_criteria(request.tools).items():
        status = criterion_status(text, behavior)
        tally[status] += 1
        verdicts[key] = {"status": status, "reasoning": _CRITERION_REASONS[status].format(text=text)}
    reasoning = (
        f"Mock judge verdict after {agent_replies} agent repl{'y' if agent_replies == 1 else 'ies'}: "
        f"{tally['passed']} passed, {tally['failed']} failed, {tally['inconclusive']} inconclusive."
    )
    arguments = json.dumps({"criteria": verdicts, "reasoning": reasoning})
    return MockReply(tool_name="finish_test", tool_arguments=arguments)


# ----- user simulator


def extract_description(system_text: str) -> str:
    """Best-effort scenario description from a user-simulator system prompt.

    Tries, in order: a ``<scenario>``/``<description>``/``<situation>`` element,
    a ``Scenario:``/``Description:`` line, then the prompt without the sentences
    that mention "user simulator" (those are the same for every scenario, so
    echoing them would make every scenario look alike).
    """
    match = _DESCRIPTION_TAG_RE.search(system_text)
    if match and match.group(2).strip():
        return match.group(2)
    match = _DESCRIPTION_LABEL_RE.search(system_text)
    if match:
        return match.group(1)
    sentences = [s for s in _SENTENCE_RE.findall(system_text) if "user simulator" not in s.lower()]
    return " ".join(sentences)


def user_simulator_reply(messages: list[dict[str, Any]]) -> str:
    """Message k of the simulated user, k = assistant messages in the request + 1.

    The simulator sees the conversation role-reversed, so its own earlier turns
    are the ``assistant`` messages: counting them tells which turn this is.
    """
    system_text = "\n".join(
        content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    words = _squash(extract_description(system_text)).split()[:DESCRIPTION_WORDS]
    summary = " ".join(words) or "my problem"
    k = sum(1 for m in messages if m.get("role") == "assistant") + 1
    if k == 1:
        return f"Hi, I need help: {summary} (message {k})"
    return f"Thanks. Following up on: {summary} (message {k})"


# ----- red-team reply scorer


def scorer_reply(text: str) -> str:
    match = _SCORE_MARKER_RE.search(text)
    score = min(10, int(match.group(1))) if match else 1
    return json.dumps({"score": score, "adaptation": f"Mock scorer: the reply scored {score}/10."})


# ----- agent


def agent_tool_call(request: ChatRequest) -> MockReply | None:
    """The tool call a tool-calling model would make first, or None (see module doc)."""
    if not request.tools or request.tool_choice == "none":
        return None
    if request.messages and request.messages[-1].get("role") == "tool":
        return None  # the tool answered: now reply in text
    wanted = _forced_function(request.tool_choice)
    for tool in request.tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        if wanted is not None and fn["name"] != wanted:
            continue
        params: dict[str, Any] = fn["parameters"] if isinstance(fn.get("parameters"), dict) else {}
        properties: dict[str, Any] = params["properties"] if isinstance(params.get("properties"), dict) else {}
        last_user = ""
        for message in reversed(request.messages):
            if message.get("role") == "user":
                last_user = _squash(content_text(message.get("content")))[:AGENT_ECHO_CHARS]
                break
        arguments = {
            name: last_user
            for name in params.get("required") or []
            if isinstance(properties.get(name), dict) and properties[name].get("type", "string") == "string"
        }
        return MockReply(tool_name=fn["name"], tool_arguments=json.dumps(arguments))
    return None


def agent_reply(messages: list[dict[str, Any]]) -> str:
    last_user = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            last_user = content_text(message.get("content"))
            break
    echoed = " ".join(strip_markers(last_user).split())[:AGENT_ECHO_CHARS]
    return f"Mock agent reply to: {echoed or '(no user message)'}"
