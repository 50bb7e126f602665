// Checks test vectors (llama.cpp's format: .inp strings separated by
// "\n__ggml_vocab_test__\n", .out one line of ids per string) against
// Hugging Face's own tokenizer implementation (the JS port of `tokenizers`).
//   cd /tmp/tokjs && npm install @huggingface/tokenizers@0.2.0
//   NODE_PATH=/tmp/tokjs/node_modules node tools/check_vectors_hf.mjs \
//       ../shared/tokenizer-tests/llama3 spec/data/llama3-fuzz [gpt2 | write-special]
// `write-special` instead writes BASE.special.out, Hugging Face's ids with
// special-token texts parsed, for the spec's special = true check.
// With `gpt2` the tokenizer's pre_tokenizer is replaced by ByteLevel with
// GPT-2's regex, as spec/tokenizer_spec.lua does for spec/data/gpt2-fuzz.
// Strings holding an added token's text are skipped: Hugging Face turns
// those into the special token, where our vectors (and our encode with its
// default special = false) keep them as text.
// JavaScript's \s lacks U+0085 (NEL), which Unicode's White_Space has (and
// so Python's regex, Oniguruma in Hugging Face's Rust tokenizers, llama.cpp
// and we): a mismatch on a string holding U+0085 is reported apart.
import fs from "fs";
import path from "path";
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH + "/");
const mod = await import(require.resolve("@huggingface/tokenizers"));
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer;

const [dir, base, variant] = process.argv.slice(2);
const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
if (variant === "gpt2") {
  tj.pre_tokenizer = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
}
const tok = new Tokenizer(tj, tc);
if (variant === "write-special") {
  // base.special.out: Hugging Face's ids with special-token texts parsed
  // (what our encode gives with special = true)
  const strings = fs.readFileSync(base + ".inp", "utf8").split("\n__ggml_vocab_test__\n");
  strings.pop();
  const lines = strings.map((t) => Array.from(tok.encode(t, { add_special_tokens: false }).ids).map((id) => " " + id).join(""));
  fs.writeFileSync(base + ".special.out", lines.join("\n") + "\n");
  process.exit(0);
}
const inp = fs.readFileSync(base + ".inp", "utf8").split("\n__ggml_vocab_test__\n");
inp.pop(); // the file ends with a separator
const out = fs.readFileSync(base + ".out", "utf8").split("\n");
const added = (tj.added_tokens || []).map((a) => a.content);
let bad = 0, skipped = 0, nel = 0;
inp.forEach((text, i) => {
  if (added.some((a) => text.includes(a))) {
    skipped++;
    return;
  }
  const ids = Array.from(tok.encode(text, { add_special_tokens: false }).ids);
  const line = ids.map((id) => " " + id).join("");
  if (line !== out[i] && text.includes("\u0085")) nel++;
  else if (line !== out[i]) {
    bad++;
    if (bad <= 5) console.log("MISMATCH", JSON.stringify(text), "\n hf  ", line, "\n file", out[i]);
  }
});
console.log(`${inp.length} strings, ${skipped} skipped (added-token texts), ${nel} differ only by JS's \\s ` +
            `(U+0085), ${bad} mismatches`);
process.exit(bad ? 1 : 0);
