// Runs llama.cpp (through node-llama-cpp's prebuilt CPU binary) on a GGUF
// file: tokenizes prompts and decodes greedily, printing one JSON line per
// prompt. Used as the reference by pkg/generate's and pkg/gguf's tests and
// by scripts/bench/generate.sh.
//
//   node scripts/llamacpp/run.mjs MODEL.gguf JOBS.json
//
// JOBS.json: {"threads": 2, "context": 256, "jobs": [{"text": "...", "ids":
// [..], "new": 20}]}. A job with "text" is tokenized by llama.cpp (BOS +
// pieces, as llama.cpp prompts are); a job with "ids" is fed as given.
// Output per job: {"ids": prompt ids, "greedy": [...], "prefill_s": s,
// "decode_s": s}. NODE_LLAMA_CPP_DIR names the directory holding
// node_modules/node-llama-cpp (default .cache/llamacpp under the repo).
import fs from "node:fs";
import path from "node:path";
import {createRequire} from "node:module";
import {pathToFileURL, fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const base = process.env.NODE_LLAMA_CPP_DIR || path.join(here, "..", "..", ".cache", "llamacpp");
const req = createRequire(path.join(base, "package.json"));
const entry = req.resolve("node-llama-cpp");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);

const [modelPath, jobsPath] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(jobsPath, "utf8"));
const threads = spec.threads || 2;
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads});
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const bos = model.tokens.bos;
for (const job of spec.jobs) {
    let ids;
    if (job.ids) {
        ids = job.ids;
    } else {
        ids = Array.from(model.tokenize(job.text ?? "", false));
        if (bos != null) ids = [bos, ...ids];
    }
    const ctx = await model.createContext({contextSize: spec.context || 256, threads, batchSize: spec.batch || 512, sequences: 1});
    const seq = ctx.getSequence();
    const out = [];
    const t0 = process.hrtime.bigint();
    let t1 = null;
    const n = job.new ?? 20;
    if (n > 0) {
        for await (const tok of seq.evaluate(ids, {temperature: 0})) {
            if (t1 === null) t1 = process.hrtime.bigint();
            out.push(tok);
            if (out.length >= n) break;
        }
    }
    const t2 = process.hrtime.bigint();
    if (t1 === null) t1 = t2;
    console.log(JSON.stringify({ids, greedy: out, prefill_s: Number(t1 - t0) / 1e9, decode_s: Number(t2 - t1) / 1e9}));
    await ctx.dispose();
}
await model.dispose();
await llama.dispose();
