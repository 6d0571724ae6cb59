#!/usr/bin/env python3
"""make_template_fixtures.py: golden renders for the chat-template interpreter.

Writes tests/golden/templates/: one .jinja file per real chat template and
cases.txt, a list of (template, messages, add_generation_prompt, bos, eos)
with the text that Python's jinja2 renders for them, or the error class it
raises. tests/unit/test_template.c replays cases.txt and compares exactly, so
`make test` needs no Python.

The environment is Hugging Face's (transformers' apply_chat_template):
ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension, a `generation` block tag, tojson as json.dumps
without ASCII escaping, and raise_exception(). strftime_now is left out on
purpose (coreai leaves it undefined so renders are deterministic), and only
messages, add_generation_prompt, bos_token and eos_token are passed: `tools`
and the rest are undefined, as in coreai.

Templates: SmolLM2-135M-Instruct's is read from the GGUF under models/ (the
copy below is used when the model file is absent). The others are written
from the published Hugging Face tokenizer_config.json files as remembered,
not downloaded: Gemma 3, Llama 3.1/3.2 (3.1's text with 3.2's strftime_now
date block), Qwen2.5, Qwen3, Llama 2, Phi-3 and Mistral v0.1. Small
differences from the released text are possible; what the tests check is
that coreai renders each of them exactly as jinja2 does.

Outcome codes: EINVAL for raise_exception(), EFORMAT for any other jinja2
error. Usage: python3 scripts/make_template_fixtures.py (from anywhere).
"""
import json
import os
import sys
import warnings

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "golden", "templates")

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)  # the newlines inside its string literals are real newline characters

GEMMA3_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '

' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '
' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>
' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model
'}}
{%- endif -%}
"""

LLAMA3_TEMPLATE = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

QWEN3_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}
"""

LLAMA2_TEMPLATE = r"""{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"""

PHI3_TEMPLATE = r"""{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'user' %}{{'<|user|>
' + message['content'] + '<|end|>
'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>
' + message['content'] + '<|end|>
'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>
' }}{% else %}{{ eos_token }}{% endif %}"""

MISTRAL_TEMPLATE = r"""{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"""

# ---- environment ----------------------------------------------------------


class GenerationTag(Extension):
    """Hugging Face's {% generation %}: a call block that renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class RaisedByTemplate(Exception):
    pass


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


ENV = make_env()
# Jinja compiles constant slices such as 1[1:] into Python that warns.
warnings.filterwarnings("ignore", category=SyntaxWarning)


def render(template, messages, add_generation_prompt, bos, eos):
    """Returns ("ok", text) or ("error", code)."""
    msgs = [{"role": r, "content": c} for r, c in messages]
    try:
        t = ENV.from_string(template)
        text = t.render(messages=msgs, add_generation_prompt=add_generation_prompt,
                        bos_token=bos, eos_token=eos)
    except RaisedByTemplate:
        return ("error", "EINVAL")
    except Exception:  # syntax, undefined, type errors: all CAI_EFORMAT
        return ("error", "EFORMAT")
    return ("ok", text)


# ---- message sets ---------------------------------------------------------

MESSAGE_SETS = {
    "multi": [
        ("system", "You are a terse assistant."),
        ("user", "What is the capital of France?"),
        ("assistant", "Paris."),
        ("user", "And of Italy?"),
    ],
    "nosys": [
        ("user", "Hello!"),
        ("assistant", "Hi, how can I help?"),
        ("user", "Tell me a joke."),
    ],
    "single": [("user", "One question only.")],
    "unicode": [
        ("system", "Tu es un assistant \u2014 \u65e5\u672c\u8a9e \U0001F642"),
        ("user", "\u00dcn\u00efc\u00f6d\u00e9 \u00bd caf\u00e9\tna\u00efve \u00ab\u00a0ok\u00a0\u00bb"),
        ("assistant", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u0394\u03b9\u03ac"),
        ("user", "emoji \U0001F44D\U0001F3FD and RTL \u05e9\u05dc\u05d5\u05dd \u2028 end"),
    ],
    "jinjaish": [
        ("system", "{# not a comment #} {% raw %}"),
        ("user", "Please print {{ not code }} and {% if x %}literal{% endif %} as is."),
        ("assistant", "Backslash \\n stays, 'single' and \"double\" quotes, {{- trimmed? -}}"),
        ("user", "<|im_end|> <|eot_id|> <end_of_turn> [INST] tokens in text"),
    ],
    "whitespace": [
        ("system", "\n  padded system  \n"),
        ("user", "  two leading spaces, trailing newline\n\n"),
        ("assistant", "\n\tanswer with tab\n"),
        ("user", " "),
    ],
    "think": [
        ("user", "Think first."),
        ("assistant", "<think>\nI should answer briefly.\n</think>\n\nShort answer."),
        ("user", "<tool_response>x</tool_response>"),
    ],
    "tool": [
        ("system", "Use tools."),
        ("user", "Weather in Paris?"),
        ("assistant", "Calling the tool."),
        ("tool", "{\"temp_c\": 21}"),
        ("tool", "{\"sky\": \"clear\"}"),
        ("user", "Thanks."),
    ],
    "empty_content": [("user", ""), ("assistant", ""), ("user", "")],
    "none_content": [("user", None)],
    "no_messages": [],
}

REAL_TEMPLATES = {
    # name: (template, bos, eos)
    "smollm2": (None, "<|im_start|>", "<|im_end|>"),
    "gemma3": (GEMMA3_TEMPLATE, "<bos>", "<eos>"),
    "llama3": (LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>"),
    "qwen25": (QWEN25_TEMPLATE, "", "<|im_end|>"),
    "qwen3": (QWEN3_TEMPLATE, "", "<|im_end|>"),
    "llama2": (LLAMA2_TEMPLATE, "<s>", "</s>"),
    "phi3": (PHI3_TEMPLATE, "<s>", "<|endoftext|>"),
    "mistral": (MISTRAL_TEMPLATE, "<s>", "</s>"),
}

# ---- expression and statement cases --------------------------------------
# Rendered with the "multi" messages, add_generation_prompt=true, bos "<s>",
# eos "</s>". Each checks one feature against jinja2.

EXPR_CASES = [
    # literals and printing
    ("int", "{{ 42 }}|{{ -7 }}|{{ 0 }}|{{ 1_000 }}|{{ 0x1F }}|{{ 0o17 }}|{{ 0b101 }}"),
    ("float", "{{ 1.5 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e-5 }}|{{ 2.0 }}|{{ 1e16 }}|{{ 123456789.125 }}|{{ -0.0 }}"),
    ("float_ops", "{{ 7 / 2 }}|{{ 6 / 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7.5 % 2 }}|{{ -7.5 // 2 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 1.5 * 2 }}"),
    ("bool_none", "{{ true }}|{{ false }}|{{ none }}|{{ True }}|{{ None }}|{{ true + 1 }}"),
    ("strings", "{{ 'single' }}|{{ \"double\" }}|{{ 'it\\'s' }}|{{ \"say \\\"hi\\\"\" }}|{{ 'a' 'b' \"c\" }}"),
    ("escapes", "{{ 'tab\\there' }}|{{ 'nl\\nx' }}|{{ '\\x41\\u00e9\\U0001F600' }}|{{ '\\101' }}|{{ 'back\\\\slash' }}|{{ 'keep\\d' }}"),
    ("repr_list", "{{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}] }}|{{ (1,) }}|{{ () }}|{{ (1, 'x') }}|{{ [] }}|{{ {} }}"),
    ("repr_quotes", "{{ [\"it's\", 'say \"x\"', 'both \\' \"', 'nl\\n', 'tab\\t', 'bell\\x07', '\\u00e9'] }}"),
    ("print_tuple", "{{ 1, 2 }}"),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ [1] }}|{{ 'x' + 'y' }}|{{ [1] + [2, 3] }}|{{ 'ab' * 3 }}|{{ 2 * 'cd' }}|{{ [0] * 3 }}"),
    ("compare", "{{ 1 < 2 }}{{ 2 <= 2 }}{{ 3 > 4 }}{{ 'a' < 'b' }}{{ 1 == 1.0 }}{{ 1 == true }}{{ 'a' != 'a' }}{{ [1, 2] == [1, 2] }}{{ [1, 2] == (1, 2) }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}{{ [1, 2] < [1, 3] }}"),
    ("logic", "{{ true and 'x' }}|{{ false or 'y' }}|{{ none or 0 or '' }}|{{ not 0 }}|{{ not not 'a' }}|{{ 1 and 0 }}|{{ '' or [] }}"),
    ("in", "{{ 'a' in 'cat' }}{{ 'z' in 'cat' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 'x' not in 'abc' }}{{ 1 in [1.0] }}{{ none in [none] }}{{ u in [] }}{{ 'a' in u }}"),
    ("cond", "{{ 'yes' if true else 'no' }}|{{ 'yes' if false else 'no' }}|{{ 'only' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}"),
    ("precedence", "{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 2 ** 3 ** 2 }}|{{ -2 ** 2 }}|{{ 10 - 2 - 3 }}|{{ 'a' ~ 2 + 'b' }}|{{ 'a' ~ (1 + 2) }}|{{ not 1 == 2 }}|{{ -(5|abs) }}|{{ -5|abs }}"),
    ("err_neg_str", "{{ -'5'|int }}"),
    ("undefined", "[{{ nothing }}]{{ nothing is defined }}{{ nothing is undefined }}{{ nothing|length }}{{ nothing == nothing }}{{ (nothing ~ 'x') }}{{ nothing|default('d') }}{% for x in nothing %}never{% endfor %}{% if not nothing %}falsy{% endif %}"),
    ("none_attr", "[{{ none.foo }}][{{ 'abc'.foo }}][{{ [1][5] }}][{{ {'a': 1}.b }}][{{ {'a': 1}['b'] }}][{{ messages[0].nope }}]"),
    # access
    ("access", "{{ messages[0]['role'] }}|{{ messages[0].content }}|{{ messages[-1].role }}|{{ messages|length }}|{{ messages[1:]|length }}|{{ messages[0]['role'][0] }}|{{ messages.0.role }}"),
    ("slicing", "{{ 'abcdef'[1:3] }}|{{ 'abcdef'[::-1] }}|{{ 'abcdef'[::2] }}|{{ 'abcdef'[-2:] }}|{{ [1, 2, 3, 4][1:] }}|{{ [1, 2, 3, 4][:-1] }}|{{ [1, 2, 3, 4][::-2] }}|{{ 'h\u00e9llo'[1:3] }}|{{ 'abc'[5:] }}|{{ [1, 2, 3][-10:10] }}"),
    ("unicode_index", "{{ '\u00e9t\u00e9'[0] }}|{{ '\u65e5\u672c\u8a9e'[-1] }}|{{ '\u65e5\u672c\u8a9e'|length }}|{{ '\U0001F600x'|length }}"),
    # filters
    ("f_trim", "[{{ '  a b  '|trim }}][{{ 'xxaxx'|trim('x') }}][{{ '\\n\\t a \\r\\n'|trim }}][{{ 5|trim }}]"),
    ("f_case", "{{ 'hello'|upper }}|{{ 'HeLLo'|lower }}|{{ 'hello world'|title }}|{{ \"they're bill's\"|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ '\u00e9t\u00e9 \u0434\u043e\u043c'|upper }}|{{ '\u00c9T\u00c9'|lower }}"),
    ("f_length", "{{ 'abc'|length }}|{{ [1, 2]|length }}|{{ {'a': 1}|length }}|{{ ''|count }}|{{ 'caf\u00e9'|length }}"),
    ("f_default", "{{ u|default('x') }}|{{ none|default('x') }}|{{ ''|default('x', true) }}|{{ 0|default('x', boolean=true) }}|{{ 'v'|default('x') }}|[{{ u|default }}]|{{ u|d('short') }}"),
    ("f_first_last", "{{ [1, 2, 3]|first }}|{{ [1, 2, 3]|last }}|{{ 'abc'|first }}|{{ 'abc'|last }}|[{{ []|first }}]|{{ {'a': 1, 'b': 2}|first }}|{{ {'a': 1, 'b': 2}|last }}"),
    ("f_join", "{{ [1, 2, 3]|join }}|{{ [1, 2, 3]|join(', ') }}|{{ ['a', none, true]|join('-') }}|{{ messages|join(' / ', attribute='role') }}|{{ 'abc'|join('.') }}"),
    ("f_replace", "{{ 'aaa'|replace('a', 'b') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'abc'|replace('', '-') }}|{{ 'x-y'|replace('-', '') }}|{{ 'caf\u00e9'|replace('\u00e9', 'e') }}"),
    ("f_tojson", "{{ {'a': [1, 2.5, none, true, 'x\"y\\n\u00e9<>&\\'']}|tojson }}|{{ 'str'|tojson }}|{{ [1, [2, {}], []]|tojson }}|{{ (1, 2)|tojson }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"),
    ("f_tojson_indent", "{{ {'name': 'f', 'parameters': {'type': 'object', 'properties': {'x': {'type': 'int'}}, 'required': []}}|tojson(indent=4) }}|{{ [1, 2]|tojson(indent=2) }}|{{ {'a': 1}|tojson(separators=(',', ':')) }}|{{ {1: 'x', true: 'y', none: 'z'}|tojson }}"),
    ("f_tojson_messages", "{{ messages|tojson }}"),
    ("f_conv", "{{ '42'|int + 1 }}|{{ 'x'|int }}|{{ 'x'|int(7) }}|{{ 3.9|int }}|{{ '3.5'|float }}|{{ 3|float }}|{{ 'x'|float }}|{{ 42|string + 'x' }}|{{ ' 12 '|int }}|{{ '0x10'|int(base=16) }}"),
    ("f_list", "{{ 'abc'|list }}|{{ {'a': 1}|list }}|{{ [1, 2]|list }}|{{ u|list }}"),
    ("f_items", "{{ {'a': 1, 'b': [2]}|items|list }}|{% for k, v in {'x': 1, 'y': 2}|items %}{{ k }}={{ v }};{% endfor %}|{{ u|items|list }}"),
    ("f_reverse_sort", "{{ 'abc'|reverse }}|{{ [1, 2, 3]|reverse|list }}|{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'a', 'C']|sort }}|{{ ['b', 'A', 'a']|sort(case_sensitive=true) }}|{{ [3, 1, 2]|sort(reverse=true) }}|{{ messages|sort(attribute='role')|map(attribute='role')|join(',') }}"),
    ("f_dictsort", "{{ {'b': 1, 'a': 2, 'C': 0}|dictsort }}|{{ {'b': 1, 'a': 2}|dictsort(by='value') }}|{{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}"),
    ("f_map_select", "{{ [1, 2, 3]|map('string')|join('-') }}|{{ messages|map(attribute='role')|join(',') }}|{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [1, 2, 3, 4]|reject('even')|list }}|{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ messages|rejectattr('role', 'eq', 'user')|map(attribute='role')|list }}|{{ [0, 1, '', 'a']|select|list }}|{{ ['A', 'b']|map('lower')|list }}"),
    ("f_selectattr_truthy", "{{ [{'a': 1}, {'a': 0}, {'b': 1}]|selectattr('a')|list }}|{{ messages|selectattr('role', 'in', ['system', 'assistant'])|map(attribute='content')|join(' & ') }}"),
    ("f_minmax_sum_unique", "{{ [3, 1, 2]|max }}|{{ [3, 1, 2]|min }}|{{ ['b', 'A']|min }}|{{ [1, 2, 3]|sum }}|{{ [1.5, 2]|sum }}|{{ [{'n': 1}, {'n': 2}]|sum(attribute='n') }}|{{ [1, 1, 2, 1]|unique|list }}|{{ ['a', 'A', 'b']|unique|list }}|[{{ []|max }}]"),
    ("f_round_abs", "{{ 2.5|round }}|{{ 3.5|round }}|{{ 2.567|round(2) }}|{{ 2.5|round(0, 'floor') }}|{{ 2.1|round(method='ceil') }}|{{ 5|round }}|{{ -3|abs }}|{{ -2.5|abs }}"),
    ("f_escape_misc", "{{ '<a href=\"x\">&\\''|e }}|{{ '<b>'|escape }}|{{ '<i>'|safe }}|{{ 'one two  three'|wordcount }}|[{{ 'ab'|center(6) }}][{{ 'abc'|center(6) }}][{{ 'ab'|center(7) }}]"),
    ("f_indent", "[{{ 'a\\nb\\nc'|indent(2) }}][{{ 'a\\n\\nb'|indent(2, true) }}][{{ 'a\\n\\nb'|indent(2, blank=true) }}][{{ 'x'|indent }}][{{ 'a\\nb'|indent('> ') }}][{{ 'a\\n'|indent(1) }}]"),
    ("f_attr", "{{ messages[0]|attr('role') }}|{{ {'a': 1}|attr('a') }}"),
    ("f_chain", "{{ '  Mixed Case  '|trim|lower|replace(' ', '_')|length }}|{{ messages|map(attribute='content')|map('length')|sum }}"),
    # tests
    ("tests", "{{ 'a' is string }}{{ 1 is string }}{{ 1 is number }}{{ 1.5 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.5 is float }}{{ none is none }}{{ 0 is none }}{{ true is boolean }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ 'x' is iterable }}{{ 3 is iterable }}{{ u is iterable }}{{ [] is sequence }}"),
    ("tests2", "{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'aB' is lower }}{{ 2 is in [1, 2] }}{{ 1 is eq 1 }}{{ 1 is equalto 2 }}{{ 2 is gt 1 }}{{ 2 is lt 1 }}{{ 2 is ge 2 }}{{ 2 is le 1 }}{{ 1 is ne 2 }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ none is sameas none }}{{ raise_exception is callable }}{{ 'x' is callable }}{{ 'trim' is filter }}{{ 'nope' is filter }}{{ 'odd' is test }}"),
    ("tests_not", "{{ 1 is not string }}{{ u is not defined }}{{ none is not none }}{{ not u is defined }}{{ 'x' is not in 'abc' }}"),
    # string methods
    ("m_strip", "[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxhixx'.strip('x') }}][{{ '\\n\\nx\\n'.strip('\\n') }}][{{ 'abcba'.lstrip('ab') }}][{{ '\u00a0x\u2003'.strip() }}]"),
    ("m_affix", "{{ 'hello'.startswith('he') }}{{ 'hello'.startswith('lo') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.endswith(('x', 'o')) }}{{ 'hello'.startswith(('x', 'y')) }}{{ ''.startswith('') }}"),
    ("m_split", "{{ 'a,b,,c'.split(',') }}|{{ ' a  b c '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a<sep>b'.split('<sep>') }}|{{ ''.split() }}|{{ ''.split(',') }}|{{ 'x'.split('x') }}|{{ ' a b '.split(none, 1) }}|{{ 'a\\nb\\r\\nc'.splitlines() }}"),
    ("m_other", "{{ 'abc'.upper() }}|{{ 'ABC'.lower() }}|{{ \"they're here\".title() }}|{{ 'hELLO'.capitalize() }}|{{ 'a-b-c'.replace('-', '+') }}|{{ 'a-b-c'.replace('-', '+', 1) }}|{{ 'hello'.find('l') }}|{{ 'hello'.find('z') }}|{{ 'hello'.rfind('l') }}|{{ 'hello'.count('l') }}|{{ ', '.join(['a', 'b']) }}|{{ '12'.isdigit() }}{{ 'a1'.isalpha() }}{{ ' '.isspace() }}{{ 'ab'.islower() }}{{ 'AB'.isupper() }}{{ 'a1'.isalnum() }}"),
    ("m_dict", "{{ {'a': 1}.get('a') }}|{{ {'a': 1}.get('b') }}|{{ {'a': 1}.get('b', 5) }}|{{ {'a': 1, 'b': 2}.keys()|list }}|{{ {'a': 1, 'b': 2}.values()|list }}|{{ {'a': 1}.items()|list }}|{% for k, v in {'x': 1}.items() %}{{ k }}{{ v }}{% endfor %}|{{ messages[0].get('role') }}"),
    # statements
    ("if_chain", "{% for n in [0, 1, 2, 3] %}{% if n == 0 %}zero{% elif n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %},{% endfor %}"),
    ("for_loop_vars", "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.previtem.role if not loop.first else '-' }}/{{ loop.nextitem.role if not loop.last else '-' }};{% endfor %}"),
    ("for_else_filter", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content }}({{ loop.length }}){% endfor %}|{% for x in [1, 2] if x > 5 %}x{% else %}none{% endfor %}"),
    ("for_unpack", "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }},{% endfor %}|{% for a, b in [(1, 'x')] %}{{ b }}{{ a }}{% endfor %}|{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}|{% for c in 'h\u00e9' %}[{{ c }}]{% endfor %}"),
    ("for_nested", "{% for i in [1, 2] %}{% for j in ['a', 'b'] %}{{ i }}{{ j }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}"),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
    ("range", "{{ range(3)|list }}|{{ range(1, 4)|list }}|{{ range(10, 0, -3)|list }}|{{ range(0)|list }}|{% for i in range(2) %}{{ i }}{% endfor %}"),
    ("loop_cycle", "{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}"),
    ("set_scope", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}[{{ x }}]{% endfor %}{{ x }}"),
    ("set_scope2", "{% set y = 1 %}{% for x in [1, 2, 3] %}{% if loop.first %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}|{% for x in [1, 2] %}{% for z in [3] %}{% set q = 1 %}{% endfor %}[{{ q }}]{% endfor %}"),
    ("set_if_toplevel", "{% if true %}{% set a = 'set in if' %}{% endif %}{{ a }}"),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set c, d = [3, 'x'] %}{{ c }}{{ d }}"),
    ("namespace", "{% set ns = namespace(found=false, count=0, name='x') %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.count = ns.count + 1 %}{% endif %}{% endfor %}{{ ns.found }}|{{ ns.count }}|{{ ns.name }}|{{ ns.missing is defined }}|{{ ns }}"),
    ("namespace_list", "{% set ns = namespace(items=[]) %}{% for m in messages %}{% set ns.items = ns.items + [m.role[0]] %}{% endfor %}{{ ns.items|join }}"),
    ("set_block", "{% set block %}Hello {{ messages[1].role }}!{% endset %}[{{ block }}]|{% set up | upper %}shout {{ 1 + 1 }}{% endset %}{{ up }}"),
    ("filter_block", "{% filter upper %}quiet {{ 'words' }}{% endfilter %}|{% filter replace('a', 'o')|trim %}  banana  {% endfilter %}"),
    ("with_block", "{% with a = 1, b = 'two' %}{{ a }}{{ b }}{% endwith %}[{{ a }}]"),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }}|{{ greet('Bob', '?') }}|{{ greet(punct='.', name='Cy') }}|{{ greet() }}|{{ greet|string }}"),
    ("macro_scope", "{% set g = 'global' %}{% macro show(x) %}{{ g }}-{{ x }}{% set g = 'local' %}-{{ g }}{% endmacro %}{{ show(1) }}|{{ g }}"),
    ("macro_recursive", "{% macro count(n) %}{{ n }}{% if n > 0 %},{{ count(n - 1) }}{% endif %}{% endmacro %}{{ count(5) }}"),
    ("generation_tag", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}<{{ m.content }}>{% endgeneration %}{% endif %}{% endfor %}"),
    ("comments", "a{# comment #}b{#- strip left #} c {#- both -#} d {# multi\nline #}e"),
    ("raw", "{% raw %}{{ not rendered }} {% if %}{% endraw %}|{%- raw -%}  spaced  {%- endraw -%}|"),
    ("dict_literal", "{{ {'a': 1, 'b': {'c': [1, 2]}}['b']['c'][1] }}|{{ {'a': 1, 'a': 2} }}|{{ {1: 'one'}[1] }}|{{ {'x': 1}['x'] + 1 }}"),
    ("bos_eos", "{{ bos_token }}body{{ eos_token }}|{{ add_generation_prompt }}"),
    ("call_chains", "{{ messages[0].content.split(' ')[1].upper() }}|{{ (messages|last).content.strip('?').split()|length }}"),
    # whitespace control
    ("ws_trim_blocks", "{% if true %}\nline\n{% endif %}\nafter\n"),
    ("ws_lstrip", "start\n    {% if true %}\n    indented\n    {% endif %}\nend"),
    ("ws_lstrip_var", "start\n    {{ 'var keeps indent' }}\nend"),
    ("ws_minus", "a   {{- 'b' -}}   c\n\n  {%- if true -%}   d   {%- endif -%}  \n e"),
    ("ws_plus", "x\n    {%+ if true %}kept{% endif +%}\ny"),
    ("ws_mixed_line", "text {% if true %}\nsame line{% endif %}\n   tail"),
    ("ws_comment_line", "a\n  {# c #}\nb"),
    ("ws_trailing_newlines", "one\n\n"),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\rd\r\n"),
    ("ws_var_end_minus", "{{ 'x' -}}\n\n   y{{- 'z' }}"),
    ("ws_after_minus_lstrip", "{% if true -%}\n   {% if true %}\n  z\n{% endif %}{% endif %}"),
    ("ws_unicode_space", "a\u00a0{{- 'b' -}}\u2003\u00a0c"),
    ("ws_tabs", "x\n\t\t{% for i in [1, 2] %}\n\t{{ i }}\n\t\t{% endfor %}\ny"),
    # Python objects that are not lists: generators, iterators, ranges, dict views
    ("generators", "{{ [1, 2]|map('string') is iterable }}|{% if []|select %}always true{% endif %}|{{ [3, 1]|select('odd')|list }}|{{ [1, 2]|map('string')|first }}|{{ messages|selectattr('role', 'eq', 'user')|list|length }}|{{ ['a', 'a']|unique|list }}|{{ {'a': 1}|items|list }}|{{ [1, 2]|map('string') is sequence }}"),
    ("reverse_iter", "{{ [1, 2, 3]|reverse|list }}|{% for x in 'ab'|list|reverse %}{{ x }}{% endfor %}|{% if []|reverse %}true{% endif %}|{{ ([1]|map('string')|reverse)[0] }}"),
    ("range_obj", "{{ range(3) }}|{{ range(1, 10, 3) }}|{{ range(5)[1:] }}|{{ range(5)[::-1] }}|{{ range(4)[2] }}|{{ range(3) == range(3) }}|{{ range(0) is true }}|{{ range(3)|length }}|{{ range(2) is sequence }}"),
    ("dict_views", "{{ {'a': 1}.items() }}|{{ {'a': 1}.keys() }}|{{ {'a': 1}.values() }}|{{ {'a': 1, 'b': 2}.keys()|length }}|[{{ {'a': 1}.keys()[0] }}]|{{ {}.items() is true }}|{{ 'a' in {'a': 1}.keys() }}|{{ {'a': 1}.keys() is sequence }}"),
    ("lazy_errors", "{% set g = 5|map('string') %}{% set h = [1, 'x']|select('odd') %}{% if g and h %}lazy{% endif %}|{{ none|items is defined }}"),
    ("list_methods", "{{ [1, 2, 1].count(1) }}|{{ ['a', 'b'].index('b') }}|{{ 2.0 is even }}|{{ 3.5 is odd }}|{{ 1.0 is odd }}"),
    ("const_slice_folded", "[{{ 1[1:] }}][{{ none[::-1] }}][{{ (true)[:2] }}][{{ [none[1:], 2] }}]"),
    ("err_slice_none", "{% set x = none %}{{ x[1:] }}"),
    ("err_slice_in_if", "{% if 0[1:] %}x{% endif %}"),
    ("err_length_generator", "{{ [1]|map('string')|length }}"),
    ("err_last_generator", "{{ [1]|map('string')|last }}"),
    ("err_lazy_used", "{{ 5|map('string')|list }}"),
    ("err_generator_index_json", "{{ [1]|select|tojson }}"),
    ("err_dictsort_list", "{{ [1]|dictsort }}"),
    ("err_indent_number", "{{ 1.5|indent }}"),
    ("err_float_undefined", "{{ nothing|float }}"),
    ("err_slice_dict", "{% set d = {'a': 1} %}{{ d[1:] }}"),
    ("err_list_index_missing", "{{ [1, 2].index(3) }}"),
    # errors (outcome codes only)
    ("err_unclosed_var", "{{ 'x' "),
    ("err_unclosed_block", "{% if true %}x"),
    ("err_unclosed_comment", "a {# b"),
    ("err_unclosed_string", "{{ 'abc }}"),
    ("err_unknown_filter", "{{ 'x'|nosuchfilter }}"),
    ("unknown_filter_dead_branch", "{% if false %}{{ 'x'|nosuchfilter }}{% elif false %}{{ 1 is nosuchtest }}{% endif %}{{ 'a' if true else 'b'|nosuchfilter }}ok"),
    ("err_unknown_filter_live_branch", "{% if true %}{{ 'x'|nosuchfilter }}{% endif %}"),
    ("err_unknown_filter_in_loop_in_if", "{% if false %}{% for x in [] %}{{ x|nosuchfilter }}{% endfor %}{% endif %}"),
    ("err_unknown_filter_in_macro", "{% macro m() %}{{ 1|nosuchfilter }}{% endmacro %}"),
    ("err_unknown_test", "{{ 'x' is nosuchtest }}"),
    ("err_unknown_tag", "{% include 'x' %}"),
    ("err_endfor_mismatch", "{% if true %}{% endfor %}"),
    ("err_bad_expr", "{{ 1 + }}"),
    ("err_brackets", "{{ (1 ] }}"),
    ("err_raise", "{{ raise_exception('no system messages') }}"),
    ("raise_dead_branch", "{% if false %}{{ raise_exception('x') }}{% endif %}fine"),
    ("err_undefined_attr", "{{ nothing.attr }}"),
    ("err_undefined_call", "{{ nothing() }}"),
    ("err_str_plus_int", "{{ 'a' + 1 }}"),
    ("err_none_plus", "{{ 'a' + none }}"),
    ("err_div_zero", "{{ 1 / 0 }}"),
    ("err_mod_zero", "{{ 1 % 0 }}"),
    ("err_tojson_undefined", "{{ nothing|tojson }}"),
    ("err_not_iterable", "{% for x in 42 %}{% endfor %}"),
    ("err_break_outside", "{% break %}"),
    ("err_list_append", "{% set l = [] %}{{ l.append(1) }}"),
    ("err_set_ns_attr_on_dict", "{% set d = {} %}{% set d.x = 1 %}"),
    ("err_compare_types", "{{ 1 < 'a' }}"),
    ("err_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}"),
    ("err_macro_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
]


# ---- output ---------------------------------------------------------------


def blob(key, text):
    data = text.encode("utf-8")
    return b"%s %d\n%s\n" % (key.encode(), len(data), data)


def case_record(name, tmpl_file, tmpl_text, messages, agp, bos, eos, outcome):
    out = [b"case %s\n" % name.encode()]
    if tmpl_file:
        out.append(b"tmpl_file %s\n" % tmpl_file.encode())
    else:
        out.append(blob("tmpl", tmpl_text))
    out.append(b"msgs %d\n" % len(messages))
    for role, content in messages:
        out.append(blob("role", role))
        if content is None:
            out.append(b"content none\n")
        else:
            out.append(blob("content", content))
    out.append(b"agp %d\n" % (1 if agp else 0))
    out.append(blob("bos", bos))
    out.append(blob("eos", eos))
    if outcome[0] == "ok":
        out.append(blob("expect", outcome[1]))
    else:
        out.append(b"error %s\n" % outcome[1].encode())
    out.append(b"end\n")
    return b"".join(out)


def smollm2_template():
    path = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        return SMOLLM2_TEMPLATE
    import gguf

    reader = gguf.GGUFReader(path)
    field = reader.fields["tokenizer.chat_template"]
    text = bytes(field.parts[field.data[0]]).decode("utf-8")
    if text != SMOLLM2_TEMPLATE:
        sys.exit("the SmolLM2 GGUF template differs from the copy in this script")
    return text


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    templates = dict(REAL_TEMPLATES)
    templates["smollm2"] = (smollm2_template(),) + templates["smollm2"][1:]
    records = []
    counts = {"ok": 0, "error": 0}
    for tname, (text, bos, eos) in templates.items():
        fname = tname + ".jinja"
        with open(os.path.join(OUT_DIR, fname), "wb") as f:
            f.write(text.encode("utf-8"))
        for mname, msgs in MESSAGE_SETS.items():
            for agp in (False, True):
                outcome = render(text, msgs, agp, bos, eos)
                counts[outcome[0]] += 1
                records.append(case_record("%s/%s/agp%d" % (tname, mname, agp), fname, None,
                                           msgs, agp, bos, eos, outcome))
    for cname, text in EXPR_CASES:
        outcome = render(text, MESSAGE_SETS["multi"], True, "<s>", "</s>")
        if cname.startswith("err_") != (outcome[0] == "error"):
            try:
                ENV.from_string(text).render(messages=[], add_generation_prompt=True)
            except Exception as e:  # say why
                print("  %s: %s" % (type(e).__name__, e))
            sys.exit("case %s: jinja2 gave %r" % (cname, outcome))
        counts[outcome[0]] += 1
        records.append(case_record("expr/" + cname, None, text, MESSAGE_SETS["multi"], True,
                                   "<s>", "</s>", outcome))
    header = (b"# Generated by scripts/make_template_fixtures.py with jinja2 %s; do not edit.\n"
              b"# Records: case, tmpl_file|tmpl, msgs N (role, content|content none)*, agp,\n"
              b"# bos, eos, expect|error, end. Strings are '<key> <n_bytes>\\n<bytes>\\n'.\n"
              % jinja2.__version__.encode())
    with open(os.path.join(OUT_DIR, "cases.txt"), "wb") as f:
        f.write(header + b"".join(records))
    print("wrote %d cases (%d renders, %d errors) to %s" %
          (len(records), counts["ok"], counts["error"], OUT_DIR))


if __name__ == "__main__":
    main()
