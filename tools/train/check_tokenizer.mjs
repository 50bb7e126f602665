// Cross-check our tokenizer.json with Hugging Face's JS implementation.
//   cd /tmp/tokjs && npm install @huggingface/tokenizers@0.2.0
//   /usr/bin/python3 tools/train/check_tokenizer.py DIR > /tmp/cases.json
//   NODE_PATH=/tmp/tokjs/node_modules node tools/train/check_tokenizer.mjs DIR /tmp/cases.json
import fs from "fs";
import path from "path";
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH + "/");
const mod = await import(require.resolve("@huggingface/tokenizers"));
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer;
const dir = process.argv[2];
const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
const tok = new Tokenizer(tj, tc);
const cases = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
let bad = 0;
for (const c of cases) {
  const ids = Array.from(tok.encode(c.text, { add_special_tokens: false }).ids);
  const same = ids.length === c.ids.length && ids.every((v, i) => v === c.ids[i]);
  if (!same) {
    bad++;
    if (bad < 5) console.log("MISMATCH", JSON.stringify(c.text.slice(0, 80)), ids.slice(0, 20), c.ids.slice(0, 20));
  }
  const dec = c.ids.length ? tok.decode(c.ids, { skip_special_tokens: false }) : "";
  if (dec !== c.text) { bad++; if (bad < 5) console.log("DECODE MISMATCH", JSON.stringify(c.text.slice(0, 80))); }
}
const withBos = Array.from(tok.encode("And it came to pass").ids);
console.log("with special tokens:", withBos);
console.log(`${cases.length} cases, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
