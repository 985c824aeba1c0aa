"""Pure translation between LLM wire formats. Nothing here does I/O or ever sees a key.

One module per wire format (`openai_chat`, `openai_responses`, `anthropic`, `gemini`), the shared
SSE framing in `sse`, the internal representation in `ir`, and provider presets as data in `presets`.
"""

INBOUND_FORMATS = ("openai_chat", "openai_responses", "anthropic", "gemini")
