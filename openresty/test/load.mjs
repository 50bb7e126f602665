// Load test of a running `bitnet serve` (make load-test; loopback only, bounded
// in time): N concurrent clients send streaming completions for D seconds and
// check every stream: 200 and complete (a finish_reason chunk, a usage chunk,
// then `data: [DONE]`), or a clean 503 with an OpenAI-style error body when the
// bounded queue is full. Reports requests/s, aggregate tokens/s, p50/p99 time to
// first token, and the workers' RSS (at start, after a warm-up of 5 s, at the
// end) and PIDs before and after (restarts).
// usage: node load.mjs --base URL --prefix NGINX_PREFIX [--concurrency 32]
//        [--duration 60] [--max-tokens 64] [--label NAME] [--mix plain,schema,tools]
// --mix cycles request kinds: plain (a streamed completion), schema (a
// streamed chat under a strict JSON Schema: a finished answer must parse and
// keep the schema's bounds), tools (a streamed chat with tool_choice
// "required": a finished call's arguments must parse and keep the tool's
// bounds). A malformed finished answer counts as truncated.
// Exit status 1 when any stream was dropped or truncated, any other 5xx came,
// or a worker restarted.
import { readFileSync, readdirSync } from "node:fs";

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const base = args.base;
if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(base ?? "")) {
  console.error("load.mjs: --base must be a loopback URL (http://127.0.0.1:PORT)");
  process.exit(2);
}
const concurrency = Number(args.concurrency ?? 32);
const duration = Number(args.duration ?? 60);
const maxTokens = Number(args["max-tokens"] ?? 64);
const label = args.label ?? "load";
const mix = (args.mix ?? "plain").split(",");
const VERSE = { type: "object", properties: { book: { type: "string", maxLength: 10 },
  chapter: { type: "integer", minimum: 1, maximum: 50 } }, required: ["book", "chapter"], additionalProperties: false };
const WEATHER = { type: "function", function: { name: "get_weather", description: "The weather in a city",
  parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 } }, required: ["city"],
    additionalProperties: false } } };
// The request of a kind: path, body, and a check of the finished output.
function request(kind, prompt) {
  const common = { max_tokens: maxTokens, temperature: 0.8, stream: true, stream_options: { include_usage: true } };
  if (kind === "schema") {
    return { path: "/v1/chat/completions", body: { ...common, messages: [{ role: "user", content: prompt }],
      response_format: { type: "json_schema", json_schema: { name: "verse", schema: VERSE, strict: true } } },
      check: (out) => { const v = JSON.parse(out.text); return v.book.length <= 10 && v.chapter >= 1 && v.chapter <= 50; } };
  }
  if (kind === "tools") {
    return { path: "/v1/chat/completions", body: { ...common, messages: [{ role: "user", content: prompt }],
      tools: [WEATHER], tool_choice: "required", parallel_tool_calls: false },
      check: (out) => out.calls.length === 1 && out.calls[0].name === "get_weather"
        && JSON.parse(out.calls[0].arguments).city.length <= 12 };
  }
  return { path: "/v1/completions", body: { ...common, prompt }, check: () => true };
}
const PROMPTS = [
  "And it came to pass", "In the beginning", "And God said", "Blessed are the meek",
  "The LORD is my shepherd", "And Moses spake unto the people", "Now Naomi had a kinsman",
  "For God so loved the world",
];

function workers() {
  const master = Number(readFileSync(`${args.prefix}/logs/nginx.pid`, "utf8"));
  const out = {};
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== master) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d}/status`, "utf8"));
      out[d] = rss ? Number(rss[1]) : null;
    } catch { /* gone */ }
  }
  return out;
}

const stats = { kinds: {}, ok: 0, refused: 0, errors5xx: 0, other: 0, dropped: 0, truncated: 0, tokens: 0, ttft: [], problems: [],
  embeddings: 0, embedded_inputs: 0 };
// every embedEvery-th request of the mix embeds 4 inputs (0: none)
const embedEvery = Number(args["embed-every"] ?? 4);
const note = (what) => { if (stats.problems.length < 10) stats.problems.push(what); };

async function one(prompt, kind) {
  const t0 = performance.now();
  const req = request(kind, prompt);
  const out = { text: "", calls: [] };
  let res;
  try {
    res = await fetch(`${base}${req.path}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req.body),
    });
  } catch (e) { stats.dropped += 1; note(`connect: ${e.message}`); return; }
  if (res.status === 503) {
    const body = await res.json().catch(() => null);
    if (body?.error?.code === "server_busy") stats.refused += 1;
    else { stats.errors5xx += 1; note(`503 without an error body: ${JSON.stringify(body)}`); }
    await new Promise((r) => setTimeout(r, 20));
    return;
  }
  if (res.status >= 500) { stats.errors5xx += 1; note(`status ${res.status}: ${await res.text()}`); return; }
  if (res.status !== 200) { stats.other += 1; note(`status ${res.status}: ${await res.text()}`); return; }
  let buf = "", first = null, finish = null, usage = null, done = false;
  const decoder = new TextDecoder();
  try {
    for await (const part of res.body) {
      buf += decoder.decode(part, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (!event.startsWith("data: ")) { note(`not an event: ${event}`); continue; }
        const data = event.slice(6);
        if (data === "[DONE]") { done = true; continue; }
        const c = JSON.parse(data);
        if (c.error) { note(`error event: ${data}`); continue; }
        if (c.usage) usage = c.usage;
        for (const ch of c.choices) {
          const text = ch.text ?? ch.delta?.content;
          if (text) out.text += text;
          for (const d of ch.delta?.tool_calls ?? []) {
            if (d.id) out.calls[d.index] = { name: d.function.name, arguments: "" };
            else out.calls[d.index].arguments += d.function.arguments;
          }
          if (first === null && (text || ch.delta?.tool_calls)) first = performance.now() - t0;
          if (ch.finish_reason) finish = ch.finish_reason;
        }
      }
    }
  } catch (e) { stats.dropped += 1; note(`stream broke: ${e.message}`); return; }
  if (!done || !finish || !usage || buf.trim() !== "") {
    stats.truncated += 1; note(`truncated: done=${done} finish=${finish} usage=${!!usage}`); return;
  }
  let good = false;
  try { good = finish === "length" || req.check(out); } catch { good = false; }
  if (!good) { stats.truncated += 1; note(`${kind}: malformed ${finish} output: ${JSON.stringify(out)}`); return; }
  stats.kinds[kind] = (stats.kinds[kind] ?? 0) + 1;
  stats.ok += 1;
  stats.tokens += usage.completion_tokens;
  if (first !== null) stats.ttft.push(first);
}

// An embeddings request of 4 inputs: every vector must have unit norm.
async function embed(prompt) {
  let res;
  try {
    res = await fetch(`${base}/v1/embeddings`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ input: [prompt, prompt + " again", "Amen", prompt.split(" ")[0]] }),
    });
  } catch (e) { stats.dropped += 1; note(`connect: ${e.message}`); return; }
  const body = await res.json().catch(() => null);
  if (res.status === 503 && body?.error?.code === "server_busy") {
    stats.refused += 1;
    await new Promise((r) => setTimeout(r, 20));
    return;
  }
  if (res.status >= 500) { stats.errors5xx += 1; note(`embeddings ${res.status}: ${JSON.stringify(body)}`); return; }
  if (res.status !== 200) { stats.other += 1; note(`embeddings ${res.status}: ${JSON.stringify(body)}`); return; }
  const bad = !body?.data || body.data.length !== 4 || body.data.some((d) => {
    const norm = d.embedding.reduce((a, x) => a + x * x, 0);
    return Math.abs(norm - 1) > 1e-4;
  });
  if (bad) { stats.truncated += 1; note(`embeddings: not 4 unit vectors`); return; }
  stats.embeddings += 1;
  stats.embedded_inputs += 4;
}

const before = workers();
const start = performance.now();
const deadline = start + duration * 1000;
let n = 0;
let warm = null; // after the slots' sessions exist: growth past this would be a leak
const warmTimer = setTimeout(() => { warm = workers(); }, Math.min(5, duration / 4) * 1000);
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (performance.now() < deadline) {
    const i = n++;
    if (embedEvery > 0 && i % embedEvery === embedEvery - 1) await embed(PROMPTS[i % PROMPTS.length]);
    else await one(PROMPTS[i % PROMPTS.length], mix[i % mix.length]);
  }
}));
clearTimeout(warmTimer);
const elapsed = (performance.now() - start) / 1000;
const after = workers();

const pct = (p) => {
  const s = [...stats.ttft].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
};
const restarts = Object.keys(before).filter((pid) => !(pid in after)).length;
const report = {
  label, concurrency, seconds: Number(elapsed.toFixed(1)), max_tokens: maxTokens,
  completed: stats.ok, completed_by_kind: stats.kinds, refused_503: stats.refused, other_5xx: stats.errors5xx, other_status: stats.other,
  dropped: stats.dropped, truncated: stats.truncated,
  requests_per_s: Number((stats.ok / elapsed).toFixed(2)),
  embeddings: stats.embeddings, embedding_requests_per_s: Number((stats.embeddings / elapsed).toFixed(2)),
  embedded_inputs_per_s: Number((stats.embedded_inputs / elapsed).toFixed(1)),
  tokens_per_s: Number((stats.tokens / elapsed).toFixed(1)),
  ttft_ms_p50: Number(pct(0.5).toFixed(1)), ttft_ms_p99: Number(pct(0.99).toFixed(1)),
  workers_rss_kb_start: before, workers_rss_kb_warm: warm, workers_rss_kb_end: after, worker_restarts: restarts,
  problems: stats.problems,
};
console.log(JSON.stringify(report, null, 2));
process.exit(stats.dropped + stats.truncated + stats.errors5xx + restarts === 0 && stats.ok > 0 ? 0 : 1);
