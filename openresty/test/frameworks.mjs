// Two JavaScript agent frameworks against `bitnet serve`, each through its
// own structured-output helper (a typed object out of a zod schema) and a
// bound tool (called with valid arguments): LangChain.js (@langchain/openai's
// chat-completions model) and the Vercel AI SDK (ai + @ai-sdk/openai). One
// JSON line for spec/openresty_spec.lua.
// usage: node frameworks.mjs BASE_URL MODEL
import { z } from "zod";
import { ChatOpenAICompletions } from "@langchain/openai";
import { tool as lcTool } from "@langchain/core/tools";
import { generateObject, generateText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const [baseURL, model] = process.argv.slice(2);
const Verse = z.object({ book: z.string().max(10), chapter: z.number().int().min(1).max(50) });
const City = z.object({ city: z.string().max(12) });
const ask = "What is the weather in Paris?";
const out = {};

// LangChain.js
const llm = new ChatOpenAICompletions({ model, apiKey: "unused", temperature: 0, maxTokens: 100, maxRetries: 0,
  configuration: { baseURL } });
out.langchain = {};
out.langchain.object = await llm.withStructuredOutput(Verse, { name: "verse", method: "jsonSchema", strict: true })
  .invoke("Name a verse");
const weather = lcTool(async ({ city }) => `Sunny in ${city}`, { name: "get_weather", description: "The weather in a city",
  schema: City });
const bound = llm.bindTools([weather], { tool_choice: "get_weather", parallel_tool_calls: false });
const ai = await bound.invoke(ask);
out.langchain.tool_calls = ai.tool_calls;

// The Vercel AI SDK
const provider = createOpenAI({ baseURL, apiKey: "unused" });
const chat = provider.chat(model);
out.aisdk = {};
const obj = await generateObject({ model: chat, schema: Verse, schemaName: "verse", prompt: "Name a verse",
  maxOutputTokens: 60, temperature: 0, maxRetries: 0 });
out.aisdk.object = obj.object;
const text = await generateText({
  model: chat, prompt: ask, maxOutputTokens: 100, temperature: 0, maxRetries: 0,
  tools: { get_weather: tool({ description: "The weather in a city", inputSchema: City,
    execute: async ({ city }) => `Sunny in ${city}` }) },
  toolChoice: { type: "tool", toolName: "get_weather" },
  providerOptions: { openai: { parallelToolCalls: false } },
});
out.aisdk.tool_calls = text.toolCalls.map((c) => ({ name: c.toolName, input: c.input }));
out.aisdk.tool_results = text.toolResults.map((r) => r.output);
out.aisdk.finish = text.finishReason;
console.log(JSON.stringify(out));
