// The official Hugging Face Hub client (@huggingface/hub) against the
// stand-in Hub, so that spec/hub_spec.lua checks the stand-in speaks the
// Hub's protocol (not our guess of it) and that caches written by either
// side are read by the other.
//   node client.mjs download HUB_URL CACHE_DIR REPO [FILE]  -> the snapshot path
//   node client.mjs scan CACHE_DIR                          -> JSON: repos, revisions, files
// HF_TOKEN, when set, is passed as the access token.
import { downloadFileToCacheDir, scanCacheDir, snapshotDownload } from "@huggingface/hub";

const [mode, ...args] = process.argv.slice(2);
const accessToken = process.env.HF_TOKEN || undefined;
console.debug = () => {}; // the client logs each download on debug

if (mode === "download") {
  const [hubUrl, cacheDir, repo, path] = args;
  const common = { repo: { type: "model", name: repo }, hubUrl, cacheDir, accessToken };
  const out = path
    ? await downloadFileToCacheDir({ ...common, path })
    : await snapshotDownload(common);
  console.log(out);
} else if (mode === "scan") {
  const result = await scanCacheDir(args[0]);
  console.log(JSON.stringify({
    repos: result.repos.map((r) => ({
      id: r.id.name,
      type: r.id.type,
      size: r.size,
      revisions: r.revisions.map((v) => ({
        commit: v.commitOid,
        refs: v.refs,
        files: v.files.map((f) => ({ name: f.path.slice(v.path.length + 1), size: f.blob.size, blob: f.blob.path.split("/").pop() })),
      })),
    })),
    warnings: result.warnings.map(String),
  }));
} else {
  console.error("usage: node client.mjs download HUB_URL CACHE_DIR REPO [FILE] | scan CACHE_DIR");
  process.exit(2);
}
