-- Chat templates: render a built-in template and a custom Jinja template.
--   bin/bitnet lua examples/templates.lua   (from a checkout)

local template = require("bitnet.template")

local messages = {
  { role = "system", content = "You are a helpful assistant." },
  { role = "user", content = "What is BitNet b1.58?" },
}

-- The prompt format of microsoft/bitnet-b1.58-2B-4T.
local prompt = template.render(template.named("bitnet"), {
  messages = messages,
  bos_token = "<|begin_of_text|>",
  add_generation_prompt = true,
})
print("bitnet:")
print(("%q"):format(prompt))

-- A custom template: compile once, render many times.
local numbered = template.compile([[
{% for m in messages %}
{{ loop.index }}. {{ m.role | upper }}: {{ m.content | trim }}
{% endfor %}
{% if tools %}
tools: {{ tools | tojson }}
{% endif %}]])

print("\ncustom:")
io.write(numbered:render({ messages = messages }))
io.write(numbered:render({
  messages = { { role = "user", content = "  Weather in Paris?  " } },
  tools = { template.object({ name = "get_weather", required = { "city" } }, { "name", "required" }) },
}))
