// The official openai client against a `bitnet serve` started with an API
// key: chat logprobs (plain and streamed), legacy completion logprobs, n = 3,
// embeddings of 1 and 8 inputs (the SDK's default base64 and explicit float),
// and the errors of a wrong key, printed as one JSON line for
// spec/openresty_spec.lua.
// usage: node extras.mjs BASE_URL MODEL API_KEY
import OpenAI from "openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const messages = [{ role: "user", content: "Who was Naomi?" }];

const chat = await client.chat.completions.create({
  model, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3,
});

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3, stream: true,
});
let streamedText = "";
const streamedLogprobs = [];
for await (const chunk of stream) {
  for (const c of chunk.choices) {
    if (c.delta?.content) streamedText += c.delta.content;
    for (const e of c.logprobs?.content ?? []) streamedLogprobs.push(e);
  }
}

const legacy = await client.completions.create({
  model, prompt: "And it came to pass", max_tokens: 6, temperature: 0, logprobs: 2, echo: true,
});

const several = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0.9, seed: 5, n: 3 });

const texts = ["In the beginning", "And God said", "Blessed are the meek", "In the beginning",
  "Jesus wept", "The LORD is my shepherd", "And it came to pass", "Amen"];
const one64 = await client.embeddings.create({ model, input: texts[0] });
const one = await client.embeddings.create({ model, input: texts[0], encoding_format: "float" });
const eight64 = await client.embeddings.create({ model, input: texts });
const eight = await client.embeddings.create({ model, input: texts, encoding_format: "float" });

const errors = {};
for (const [name, key] of [["wrong", "sk-not-it"]]) {
  try {
    await new OpenAI({ baseURL, apiKey: key, maxRetries: 0 }).models.list();
  } catch (e) {
    errors[name] = { name: e.constructor.name, status: e.status, code: e.code };
  }
}

console.log(JSON.stringify({
  chat: { text: chat.choices[0].message.content, logprobs: chat.choices[0].logprobs.content },
  streamed: { text: streamedText, logprobs: streamedLogprobs },
  legacy: { text: legacy.choices[0].text, logprobs: legacy.choices[0].logprobs, usage: legacy.usage },
  several: { choices: several.choices.map((c) => ({ index: c.index, text: c.message.content, finish: c.finish_reason })),
    usage: several.usage },
  embeddings: { one64: one64.data.map((d) => d.embedding), one: one.data.map((d) => d.embedding),
    eight64: eight64.data.map((d) => d.embedding), eight: eight.data.map((d) => d.embedding), usage: eight.usage },
  errors,
}));
