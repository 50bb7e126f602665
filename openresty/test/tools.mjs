// The official openai client against `bitnet serve`: structured output
// (chat.completions.parse with a strict JSON Schema), a required tool call,
// a streamed tool call assembled by the SDK's stream helper, the tool-result
// turn, and a schema the engine cannot enforce. One JSON line for
// spec/openresty_spec.lua.
// usage: node tools.mjs BASE_URL MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const VERSE = {
  type: "object",
  properties: { book: { type: "string", maxLength: 10 }, chapter: { type: "integer", minimum: 1, maximum: 50 } },
  required: ["book", "chapter"], additionalProperties: false,
};
const WEATHER = {
  type: "function",
  function: {
    name: "get_weather", description: "The weather in a city", strict: true,
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 } }, required: ["city"],
      additionalProperties: false },
  },
};
const ask = [{ role: "user", content: "What is the weather in Paris?" }];

const parsed = await client.chat.completions.parse({
  model, messages: [{ role: "user", content: "Name a verse" }], max_tokens: 60, temperature: 0,
  response_format: { type: "json_schema", json_schema: { name: "verse", schema: VERSE, strict: true } },
});

const called = await client.chat.completions.create({
  model, messages: ask, tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false, max_tokens: 100,
  temperature: 0,
});

const stream = client.chat.completions.stream({
  model, messages: ask, tools: [WEATHER], tool_choice: { type: "function", function: { name: "get_weather" } },
  parallel_tool_calls: false, max_tokens: 100, temperature: 0,
});
const streamed = await stream.finalChatCompletion();

const call = called.choices[0].message.tool_calls[0];
const turn = await client.chat.completions.create({
  model, tools: [WEATHER], parallel_tool_calls: false, max_tokens: 24, temperature: 0,
  messages: [...ask, called.choices[0].message, { role: "tool", tool_call_id: call.id, content: "Sunny, 21 C" }],
});

let error = null;
try {
  await client.chat.completions.create({
    model, messages: ask, max_tokens: 8,
    response_format: { type: "json_schema", json_schema: { name: "tags", strict: true,
      schema: { type: "array", items: { type: "string" }, uniqueItems: true } } },
  });
} catch (e) {
  error = { name: e.constructor.name, status: e.status, param: e.param, message: e.message };
}

const msg = (r) => ({ content: r.choices[0].message.content, tool_calls: r.choices[0].message.tool_calls ?? null,
  finish: r.choices[0].finish_reason });
console.log(JSON.stringify({
  parsed: { parsed: parsed.choices[0].message.parsed, content: parsed.choices[0].message.content,
    finish: parsed.choices[0].finish_reason },
  called: msg(called), streamed: msg(streamed), turn: msg(turn), error,
}));
