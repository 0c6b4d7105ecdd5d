// The playground page served at GET /: one self-contained HTML document (no external scripts,
// styles or fonts) that talks to the server's own API. For a language model it streams
// POST /v1/completions with the sampling controls and shows tokens per second; for a
// sequence-to-sequence model it calls POST /v1/translate and shows the n-best translations and the
// best one's attention heatmap (the SVG lib/decode/heatmap.ts draws).
export const PLAYGROUND_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rnnkit playground</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  #model { color: #666; margin-bottom: 1rem; }
  textarea, input { font: inherit; }
  textarea { width: 100%; box-sizing: border-box; }
  .controls { display: flex; flex-wrap: wrap; gap: .6rem 1.2rem; margin: .6rem 0; }
  .controls label { display: flex; flex-direction: column; font-size: .8rem; color: #555; }
  .controls input { width: 7rem; }
  button { font: inherit; padding: .35rem 1.1rem; }
  #output { white-space: pre-wrap; font-family: ui-monospace, monospace; background: #f6f6f4; border: 1px solid #ddd; min-height: 6rem; padding: .6rem; margin-top: .6rem; }
  #stats, #error { font-size: .85rem; margin-top: .4rem; }
  #error { color: #b00020; }
  #hypotheses li { font-family: ui-monospace, monospace; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>rnnkit playground</h1>
<div id="model">loading the model...</div>
<label>API key (if the server asks for one) <input id="key" type="password" autocomplete="off"></label>

<section id="lm" hidden>
  <textarea id="prompt" rows="4" placeholder="a prompt to continue"></textarea>
  <div class="controls">
    <label>temperature <input id="temperature" type="number" value="0.8" min="0" step="0.1"></label>
    <label>top-k <input id="top_k" type="number" value="0" min="0" step="1"></label>
    <label>top-p <input id="top_p" type="number" value="1" min="0.01" max="1" step="0.05"></label>
    <label>repetition penalty <input id="repetition_penalty" type="number" value="1" min="0.01" step="0.05"></label>
    <label>max tokens <input id="max_tokens" type="number" value="200" min="1" step="1"></label>
    <label>seed <input id="seed" type="number" placeholder="random" min="0" step="1"></label>
  </div>
  <button id="generate">Generate</button> <button id="stop" disabled>Stop</button>
  <div id="output"></div>
  <div id="stats"></div>
</section>

<section id="seq2seq" hidden>
  <textarea id="source" rows="2" placeholder="a source text to translate"></textarea>
  <div class="controls">
    <label>beam <input id="beam" type="number" value="4" min="1" step="1"></label>
    <label>n-best <input id="n_best" type="number" value="3" min="1" step="1"></label>
  </div>
  <button id="translate">Translate</button>
  <ol id="hypotheses"></ol>
  <div id="heatmap"></div>
</section>
<div id="error"></div>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
let modelName = null;
let running = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function failure(res) {
  const body = await res.json().catch(() => null);
  const e = body && body.error;
  return new Error(res.status + ": " + (typeof e === "string" ? e : e ? e.message : res.statusText));
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? undefined : Number(v);
}

async function loadModel() {
  $("error").textContent = "";
  const res = await fetch("/v1/model", { headers: headers() });
  if (!res.ok) throw await failure(res);
  const info = await res.json();
  const seq2seq = info.kind === "seq2seq";
  if (!seq2seq) {
    const list = await fetch("/v1/models", { headers: headers() });
    if (!list.ok) throw await failure(list);
    modelName = (await list.json()).data[0].id;
  }
  const c = info.config;
  $("model").textContent = (seq2seq ? "sequence-to-sequence" : "language model " + modelName) +
    ": " + c.cell + ", hidden " + c.hiddenSize + ", " + (c.numLayers || c.encoderLayers || 1) + " layers (" + info.backend + ")";
  $("lm").hidden = seq2seq;
  $("seq2seq").hidden = !seq2seq;
}

async function generate() {
  $("error").textContent = "";
  $("output").textContent = "";
  $("stats").textContent = "";
  const body = {
    model: modelName, prompt: $("prompt").value, stream: true, stream_options: { include_usage: true },
    temperature: number("temperature"), top_k: number("top_k"), top_p: number("top_p"),
    repetition_penalty: number("repetition_penalty"), max_tokens: number("max_tokens"), seed: number("seed"),
  };
  running = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  const started = performance.now();
  let firstAt = null;
  try {
    const res = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: running.signal });
    if (!res.ok) throw await failure(res);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.replace(/^data: /, "");
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        if (chunk.usage) {
          const seconds = (performance.now() - (firstAt ?? started)) / 1000;
          $("stats").textContent = chunk.usage.completion_tokens + " tokens, " +
            (chunk.usage.completion_tokens / Math.max(seconds, 1e-3)).toFixed(1) + " tokens/s";
        }
        for (const choice of chunk.choices) {
          if (choice.text) {
            firstAt ??= performance.now();
            $("output").textContent += choice.text;
          }
          if (choice.finish_reason) $("output").dataset.finish = choice.finish_reason;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") $("error").textContent = e.message;
  } finally {
    running = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

async function translate() {
  $("error").textContent = "";
  $("hypotheses").textContent = "";
  $("heatmap").textContent = "";
  const body = { sources: [$("source").value], beam: number("beam"), n_best: number("n_best"), attention: true };
  try {
    const res = await fetch("/v1/translate", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!res.ok) throw await failure(res);
    const [t] = (await res.json()).translations;
    for (const h of t.hypotheses) {
      const li = document.createElement("li");
      li.textContent = h.text + "  (" + h.score.toFixed(4) + ")";
      $("hypotheses").append(li);
    }
    const img = document.createElement("img");
    img.alt = "attention heatmap";
    img.src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(t.attention_svg)));
    $("heatmap").append(img);
  } catch (e) {
    $("error").textContent = e.message;
  }
}

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => running && running.abort());
$("translate").addEventListener("click", translate);
$("key").addEventListener("change", () => loadModel().catch((e) => ($("error").textContent = e.message)));
loadModel().catch((e) => ($("error").textContent = e.message));
</script>
</body>
</html>
`;
