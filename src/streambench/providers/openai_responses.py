"""openai-responses: ``POST /v1/responses``, ``response.created`` ... ``response.completed``,
every event numbered by ``sequence_number``."""

from __future__ import annotations

from typing import Any, ClassVar

from streambench.providers.base import (
    CREATED,
    Content,
    ContentKind,
    Cut,
    Delta,
    EventInfo,
    Frame,
    JsonEventsAPI,
    Path,
    PromptParts,
    ToolCall,
    ToolCallPiece,
    ToolChoice,
    ToolDefinition,
    Unit,
    digest,
    dumps,
    error_message,
    last_user_and_prefill,
    split_deltas,
    sse,
    tool_choice,
)
from streambench.providers.openai_chat import SERVER_ERROR, openai_http_error
from streambench.sse import SSEEvent

DELTAS: dict[str, ContentKind] = {
    "response.output_text.delta": "text",
    "response.refusal.delta": "text",
    "response.function_call_arguments.delta": "tool_json",
    "response.mcp_call_arguments.delta": "tool_json",
    "response.reasoning_text.delta": "thinking",
    "response.reasoning_summary_text.delta": "thinking",
}
_ITEM_KINDS = {"message": "text", "reasoning": "thinking", "function_call": "tool"}
_TERMINALS = ("response.completed", "response.incomplete", "response.failed")


def call_item(c: Content, index: int, status: str, arguments: str) -> dict[str, Any]:
    """The ``function_call`` output item of ``c``'s ``index``-th tool call."""
    return {
        "id": "fc_" + digest(c.message_id, "call", index, n=48),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": c.call_id(index, "call_"),
        "name": c.tool_calls[index].name,
    }


def response_object(c: Content, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``response`` object of the created / completed / incomplete events."""
    incomplete = status == "incomplete"
    usage = {
        "input_tokens": 25,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": c.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(c.thinking)},
        "total_tokens": 25 + c.output_tokens,
    }
    return {
        "id": c.message_id,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": c.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage if status != "in_progress" else None,
        "user": None,
        "metadata": {},
    }


def _cut_item(item: dict[str, Any], cut: Cut) -> dict[str, Any]:
    """An output item holding only the content kept before the cut."""
    item_id = item.get("id")
    if "arguments" in item and ("responses", item_id, None, None) in cut.kept:
        item["arguments"] = cut.kept[("responses", item_id, None, None)]
    for key, index_kind in (("content", "content"), ("summary", "summary")):
        for i, part in enumerate(item.get(key) or []):
            slot = ("responses", item_id, i if index_kind == "content" else None,
                    i if index_kind == "summary" else None)  # fmt: skip
            if isinstance(part, dict) and "text" in part:
                part["text"] = cut.kept.get(slot, "")
    if item.get("status") == "completed":
        item["status"] = "incomplete"
    return item


def _refused_item(item: dict[str, Any], said: dict[tuple[Any, ...], str]) -> dict[str, Any]:
    """A message item whose content parts are refusals (what ``said`` holds for each)."""
    if isinstance(item.get("content"), list):
        item["content"] = [
            {"type": "refusal", "refusal": said.get(("responses", item.get("id"), i, None), "")}
            for i in range(len(item["content"]))
        ]
    return item


class OpenAIResponses(JsonEventsAPI):
    name = "openai-responses"
    provider = "openai"
    sdk = "openai"
    default_model = "gpt-4o-2024-08-06"
    base_url = "https://api.openai.com"
    path = "/v1/responses"
    key_env = "OPENAI_API_KEY"
    routes = ("/v1/responses",)
    id_prefix = "resp_"
    numbered = True
    refusal_key = "refusal"
    unique_call_ids = True  # "Response snapshot has conflicting output identities."
    stop_reasons: ClassVar[dict[str, str]] = {
        "end_turn": "completed",
        "max_tokens": "max_output_tokens",
    }

    def matches_url(self, host: str, segments: list[str], path: str) -> bool:
        return "responses" in segments

    def matches_event(self, kind: str, payload: dict[str, Any]) -> bool:
        return kind.startswith("response.")

    def interpret_payload(self, ev: SSEEvent, payload: dict[str, Any], info: EventInfo) -> None:
        kind = payload.get("type") or ev.event
        if kind in DELTAS:
            info.pieces.append((DELTAS[kind], str(payload.get("delta", ""))))
        elif kind in _TERMINALS:
            response = payload.get("response") or {}
            reason = (response.get("incomplete_details") or {}).get("reason")
            info.stop_reason = reason or response.get("status") or kind.removeprefix("response.")
            if kind == "response.failed":
                info.error = error_message(response.get("error") or "response failed")
        elif kind == "error":
            info.error = error_message(payload.get("error") or payload)

    def tool_call_pieces(self, obj: dict[str, Any]) -> list[ToolCallPiece]:
        kind = obj.get("type")
        item = obj.get("item") or {}
        if kind == "response.output_item.added" and item.get("type") == "function_call":
            return [ToolCallPiece(str(item.get("id")), str(item.get("name") or ""), "")]
        if kind == "response.function_call_arguments.delta":
            return [ToolCallPiece(str(obj.get("item_id")), None, str(obj.get("delta", "")))]
        return []

    def locate(self, obj: dict[str, Any]) -> Delta | None:
        kind = obj.get("type")
        if kind not in DELTAS or not isinstance(obj.get("delta"), str):
            return None
        slot = ("responses", obj.get("item_id"), obj.get("content_index"), obj.get("summary_index"))
        return Delta(("delta",), slot, DELTAS[str(kind)])

    def shape_piece(self, obj: dict[str, Any], first: bool, last: bool) -> None:
        if not first and "logprobs" in obj:
            obj["logprobs"] = []

    def tool_call_ids(self, obj: dict[str, Any]) -> list[Path]:
        paths: list[Path] = []
        item = obj.get("item")
        if isinstance(item, dict) and item.get("call_id"):
            paths.append(("item", "call_id"))
        output = (obj.get("response") or {}).get("output") if "response" in obj else None
        for i, entry in enumerate(output or []):
            if isinstance(entry, dict) and entry.get("call_id"):
                paths.append(("response", "output", i, "call_id"))
        return paths

    def unit(self, obj: dict[str, Any]) -> Unit | None:
        """An output item, by ``output_index``; its kind is on ``response.output_item.added``."""
        item = obj.get("item") if isinstance(obj.get("item"), dict) else {}
        item_id = obj.get("item_id") or item.get("id")
        index = obj.get("output_index")
        if item_id is None or not isinstance(index, int):
            return None
        opens = obj.get("type") == "response.output_item.added"
        kind = _ITEM_KINDS.get(str(item.get("type")), "other") if opens else None
        return Unit(("responses", item_id), kind, index, opens)

    def reindex(self, obj: dict[str, Any], moved: dict[int, int]) -> None:
        if obj.get("output_index") in moved:
            obj["output_index"] = moved[obj["output_index"]]
        output = (obj.get("response") or {}).get("output") if "response" in obj else None
        if isinstance(output, list) and sorted(moved) == list(range(len(output))):
            reordered = list(output)
            for old, new in moved.items():
                reordered[new] = output[old]
            obj["response"]["output"] = reordered

    def after_cut(self, obj: dict[str, Any], cut: Cut) -> dict[str, Any] | None:
        kind = str(obj.get("type"))
        if kind in DELTAS:
            return None
        seen = {o.get("item_id") or (o.get("item") or {}).get("id") for o in cut.before}
        item_id = obj.get("item_id") or (obj.get("item") or {}).get("id")
        if item_id is not None and item_id not in seen:
            return None  # an output item the answer no longer reaches
        slot = ("responses", item_id, obj.get("content_index"), obj.get("summary_index"))
        kept = cut.kept.get(slot)
        for key in ("text", "arguments"):
            if key in obj and kept is not None:
                obj[key] = kept
        if isinstance(obj.get("part"), dict) and kept is not None:
            obj["part"]["text"] = kept
        if isinstance(obj.get("item"), dict):
            obj["item"] = _cut_item(obj["item"], cut)
        if kind in _TERMINALS:
            obj["type"] = "response.incomplete"
            response = obj.setdefault("response", {})
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": cut.reason}
            output = response.get("output") or []
            response["output"] = [_cut_item(i, cut) for i in output if i.get("id") in seen]
        return obj

    def refuse(self, obj: dict[str, Any], where: Delta, piece: str) -> None:
        obj["type"] = "response.refusal.delta"
        obj["delta"] = piece
        obj.pop("logprobs", None)

    def refused(
        self, obj: dict[str, Any], said: dict[tuple[Any, ...], str], events: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """A refusal is a message whose content parts are ``refusal`` parts; every other output
        item (reasoning, tool calls) is gone."""
        messages = {
            (o.get("item") or {}).get("id")
            for o in events
            if o.get("type") == "response.output_item.added"
            and (o.get("item") or {}).get("type") == "message"
        }
        kind = str(obj.get("type"))
        item_id = obj.get("item_id") or (obj.get("item") or {}).get("id")
        if item_id is not None and item_id not in messages:
            return None
        if "annotation" in kind:
            return None
        slot = ("responses", item_id, obj.get("content_index"), None)
        if kind == "response.output_text.done":
            obj["type"] = "response.refusal.done"
            obj.pop("text", None)
            obj.pop("logprobs", None)
            obj["refusal"] = said.get(slot, "")
        if isinstance(obj.get("part"), dict):
            done = kind == "response.content_part.done"
            obj["part"] = {"type": "refusal", "refusal": said.get(slot, "") if done else ""}
        if isinstance(obj.get("item"), dict):
            obj["item"] = _refused_item(obj["item"], said)
        if kind in _TERMINALS:
            response = obj.setdefault("response", {})
            output = response.get("output") or []
            response["output"] = [_refused_item(i, said) for i in output if i.get("id") in messages]
        return obj

    def http_error(self, status: int, retry_after_s: float | None) -> tuple[dict[str, str], Any]:
        return openai_http_error(status)

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        data = {
            "type": "error",
            "code": "server_error",
            "message": SERVER_ERROR,
            "param": None,
            "sequence_number": sequence_number,
        }
        return SSEEvent(event="error", data=dumps(data))

    def render(self, c: Content) -> list[Frame]:
        frames: list[Frame] = []

        def emit(event: str, tokens: int = 0, **fields: Any) -> None:
            body = {"type": event, **fields, "sequence_number": len(frames)}
            frames.append(sse(body, event, tokens))

        incomplete = c.stop_reason in ("max_tokens", "length", "max_output_tokens")
        status = "incomplete" if incomplete else "completed"
        emit("response.created", response=response_object(c, "in_progress", []))
        emit("response.in_progress", response=response_object(c, "in_progress", []))
        output: list[dict[str, Any]] = []
        if c.thinking:
            item_id = "rs_" + digest(c.message_id, "reasoning", n=48)
            index = len(output)
            emit("response.output_item.added", output_index=index,
                 item={"id": item_id, "type": "reasoning", "summary": []})  # fmt: skip
            ids = {"item_id": item_id, "output_index": index, "summary_index": 0}
            emit(
                "response.reasoning_summary_part.added",
                **ids,
                part={"type": "summary_text", "text": ""},
            )
            for piece in c.thinking:
                emit("response.reasoning_summary_text.delta", tokens=1, **ids, delta=piece)
            summary = {"type": "summary_text", "text": "".join(c.thinking)}
            emit("response.reasoning_summary_text.done", **ids, text=summary["text"])
            emit("response.reasoning_summary_part.done", **ids, part=summary)
            item = {"id": item_id, "type": "reasoning", "summary": [summary]}
            emit("response.output_item.done", output_index=index, item=item)
            output.append(item)
        if c.deltas or not (c.thinking or c.tool_calls):
            item_id = "msg_" + digest(c.message_id, "message", n=48)
            index = len(output)
            item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant"}
            emit("response.output_item.added", output_index=index, item={**item, "content": []})
            ids = {"item_id": item_id, "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit("response.content_part.added", **ids, part=empty)
            for piece in c.deltas:
                emit("response.output_text.delta", tokens=1, **ids, delta=piece, logprobs=[])
            emit("response.output_text.done", **ids, text=c.text, logprobs=[])
            part = {**empty, "text": c.text}
            emit("response.content_part.done", **ids, part=part)
            item = {**item, "status": "completed", "content": [part]}
            emit("response.output_item.done", output_index=index, item=item)
            output.append(item)
        for i, call in enumerate(c.tool_calls):
            item = call_item(c, i, "in_progress", "")
            item_id, index = item["id"], len(output)
            emit("response.output_item.added", output_index=index, item=item)
            for piece in split_deltas(call.arguments):
                emit("response.function_call_arguments.delta", tokens=1, item_id=item_id,
                     output_index=index, delta=piece)  # fmt: skip
            emit("response.function_call_arguments.done", item_id=item_id, output_index=index,
                 arguments=call.arguments)  # fmt: skip
            item = {**item, "status": "completed", "arguments": call.arguments}
            emit("response.output_item.done", output_index=index, item=item)
            output.append(item)
        final = "response.completed" if status == "completed" else "response.incomplete"
        emit(final, response=response_object(c, status, output))
        return frames

    def response_tool_calls(self, body: Any) -> list[ToolCall]:
        items = body.get("output") if isinstance(body, dict) else None
        return [
            ToolCall(str(item.get("name", "")), str(item.get("arguments", "")), item.get("call_id"))
            for item in items or []
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]

    def response_text(self, body: Any) -> str:
        items = body.get("output") if isinstance(body, dict) else None
        parts = [
            part
            for item in items or []
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or []
        ]
        return "".join(
            p["text"]
            for p in parts
            if isinstance(p, dict)
            and p.get("type") == "output_text"
            and isinstance(p.get("text"), str)
        )

    def render_json(self, c: Content) -> dict[str, Any]:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": c.text}
        item = {
            "id": "msg_" + digest(c.message_id, "message", n=48),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        calls = [
            call_item(c, i, "completed", call.arguments) for i, call in enumerate(c.tool_calls)
        ]
        return response_object(c, "completed", [item, *calls])

    def build_body(
        self, request: dict[str, Any] | None, prompt: str | None, model: str | None
    ) -> dict[str, Any]:
        body = dict(request or {})
        if model or "model" not in body:
            body["model"] = model or self.default_model
        if prompt is not None:
            body["input"] = prompt
        body["stream"] = True
        return body

    def tool_fields(self, tool: ToolDefinition, forced: bool) -> dict[str, Any]:
        offered = {
            "type": "function",
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.input_schema,
        }
        choice: Any = {"type": "function", "name": tool.name} if forced else "auto"
        return {"tools": [offered], "tool_choice": choice}

    def read_tools(self, body: dict[str, Any]) -> ToolChoice:
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        offered = [
            (str(t["name"]), t.get("parameters"))
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function" and t.get("name")
        ]
        choice = body.get("tool_choice")
        forced = None
        if isinstance(choice, dict) and choice.get("type") == "function":
            forced = choice.get("name")
        elif choice == "required" and len(offered) == 1:
            forced = offered[0][0]
        return tool_choice(offered, None if forced is None else str(forced))

    def read_prompt(self, body: dict[str, Any]) -> PromptParts:
        items = body.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        return last_user_and_prefill([m for m in items or [] if isinstance(m, dict)], "content")


API = OpenAIResponses()
