// The search page: upload or drop an image (POST /api/search), click a result to search from
// it (GET /api/neighbors/{id}); thumbnails from /thumb/{id}. No external resources.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function k() {
  return Math.max(1, Math.min(Number($("k").value) || 1, info ? info.max_k : 100));
}

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showQuery(src) {
  $("query-image").src = src;
  $("query-image").hidden = false;
}

function showResults(answer, what) {
  const grid = $("results");
  grid.replaceChildren();
  for (const r of answer.results) {
    const card = document.createElement("button");
    card.className = "result";
    card.dataset.id = r.id;
    card.title = `${r.path}: search from this image`;
    const img = document.createElement("img");
    img.src = `/thumb/${r.id}`;
    img.alt = r.path;
    img.addEventListener("error", () => card.classList.add("missing"));
    const distance = document.createElement("span");
    distance.className = "distance" + (r.distance === 0 ? " same" : "");
    distance.textContent = `${r.distance} bit${r.distance === 1 ? "" : "s"}`;
    const path = document.createElement("span");
    path.className = "path";
    path.textContent = r.path;
    card.append(img, distance, path);
    card.addEventListener("click", () => neighbors(r.id, r.path));
    grid.append(card);
  }
  const size = answer.size.toLocaleString();
  setStatus(`${what}: ${answer.results.length} nearest of ${size} in ${answer.query_ms} ms`);
}

async function search(file) {
  if (!file) return;
  showQuery(URL.createObjectURL(file));
  setStatus(`searching with ${file.name}…`);
  const form = new FormData();
  form.append("image", file);
  try {
    showResults(await call(`/api/search?k=${k()}`, { method: "POST", body: form }), file.name);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function neighbors(id, path) {
  showQuery(`/thumb/${id}`);
  setStatus(`searching from ${path}…`);
  try {
    showResults(await call(`/api/neighbors/${id}?k=${k()}`), path);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// Uploads need the run's encoder, which the server may still be loading: poll until it is.
async function showEncoder() {
  if (info.encoder === "loading") {
    setStatus("loading the run's encoder: uploads work in a few seconds…");
    setTimeout(async () => {
      try {
        info = await call("/api/info");
      } catch (error) {
        return setStatus(error.message, true);
      }
      if (info.encoder !== "loading") setStatus(info.search ? "ready: drop an image" : "");
      showEncoder();
    }, 1000);
  } else if (!info.search) {
    setStatus(`uploads are off (${info.encoder})`, true);
  }
}

async function start() {
  try {
    info = await call("/api/info");
  } catch (error) {
    setStatus(error.message, true);
    return;
  }
  const run = info.run.split(/[\\/]/).filter(Boolean).pop() || info.run;
  $("about").textContent =
    `index ${info.index}: ${info.size.toLocaleString()} images, ${info.bits}-bit codes · ` +
    `run ${run} (step ${info.step})`;
  $("about").title = `index root ${info.root}\nrun ${info.run}`;
  $("k").value = info.default_k;
  $("k").max = info.max_k;
  showEncoder();
  const drop = $("drop");
  $("file").addEventListener("change", (e) => search(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    search(e.dataTransfer.files[0]);
  });
}

start();
