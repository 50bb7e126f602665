// The official openai client against a running `bitnet serve`: a non-streamed
// and a streamed chat completion, a completion, the model list and an error,
// printed as one JSON line for spec/openresty_spec.lua to compare.
// usage: node client.mjs BASE_URL MODEL MESSAGES_JSON MAX_TOKENS
import OpenAI from "openai";

const [baseURL, model, messagesJson, maxTokensArg] = process.argv.slice(2);
const messages = JSON.parse(messagesJson);
const max_tokens = Number(maxTokensArg);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60000 });

const plain = await client.chat.completions.create({ model, messages, max_tokens, temperature: 0 });

const stream = await client.chat.completions.create({
  model, messages, max_tokens, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = "", finish = null, usage = null, chunks = 0, role = null;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.role) role = c.delta.role;
    if (c.delta?.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
}

const completion = await client.completions.create({ model, prompt: "And it came to pass", max_tokens, temperature: 0 });

const models = [];
for await (const m of client.models.list()) models.push(m.id);

let error = null;
try {
  await client.chat.completions.create({ model, messages, temperature: 7 });
} catch (e) {
  error = { name: e.constructor.name, status: e.status, type: e.type, code: e.code, param: e.param, message: e.message };
}

console.log(JSON.stringify({
  plain: { object: plain.object, content: plain.choices[0].message.content, role: plain.choices[0].message.role,
    finish: plain.choices[0].finish_reason, usage: plain.usage },
  streamed: { text, role, finish, usage, chunks },
  completion: { object: completion.object, text: completion.choices[0].text, usage: completion.usage },
  models,
  error,
}));
