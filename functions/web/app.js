// The result viewer: upload through a presigned URL, follow the job, show its shots. Plain JS, no dependencies.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = {
  key: "", job: null, result: null, curve: null, videoUrl: null, thumbs: null, current: -1, clips: null,
};
// Colours of transition types and technical-cue types, on the span tracks, the curve, the badges and the legend.
const SPAN_COLOURS = {
  cut: "#1d232b", dissolve: "#e08a17", fade: "#8a4fd6", fade_in: "#8a4fd6", fade_out: "#8a4fd6",
  BlackFrames: "#000000", ColorBars: "#d2233c", FrozenFrames: "#1769e0", Silence: "#9aa3ad", Content: "#9fd3a8",
  OpeningCredits: "#c9a227", EndCredits: "#a0752b", Slate: "#5b6b7a", StudioLogo: "#d64f9c",
};

function apiKey() {
  return $("#api-key").value.trim();
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { "X-API-Key": apiKey(), ...(options.headers || {}) } });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      const { error } = await response.json();
      message = `${error.code}: ${error.message}`;
    } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

function setProgress(stage, percent) {
  $("#progress").hidden = false;
  $("#stage").textContent = stage;
  $("#percent").textContent = `${percent.toFixed(percent < 10 ? 1 : 0)}%`;
  $("#bar").value = percent;
}

function putWithProgress(url, headers, file) {
  // fetch() cannot report upload progress; XHR can
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers)) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value); // the browser sets it
    }
    xhr.upload.onprogress = (e) => e.lengthComputable && setProgress("Uploading", (100 * e.loaded) / e.total);
    xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`upload refused by storage: HTTP ${xhr.status}`)));
    xhr.onerror = () => reject(new Error("upload failed: storage unreachable (CORS or network)"));
    xhr.send(file);
  });
}

async function run() {
  const file = $("#file").files[0];
  if (!file) return;
  showError("");
  $("#result").hidden = true;
  $("#run").disabled = true;
  try {
    const type = file.type || "application/octet-stream";
    const upload = await (await api("/v1/uploads", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: file.name, content_type: type, size_bytes: file.size }),
    })).json();
    setProgress("Uploading", 0);
    await putWithProgress(upload.url, upload.headers, file);
    const threshold = parseFloat($("#threshold").value);
    const job = await (await api("/v1/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ source: upload.key, tag: file.name, threshold, formats: ["json", "csv", "edl"] }),
    })).json();
    if (state.videoUrl) URL.revokeObjectURL(state.videoUrl);
    state.videoUrl = URL.createObjectURL(file);
    history.replaceState(null, "", `#job=${job.id}`);
    await follow(job.id);
  } catch (error) {
    showError(error.message);
  } finally {
    $("#run").disabled = !$("#file").files.length;
  }
}

async function follow(jobId) {
  $("#job-id").textContent = jobId;
  $("#cancel").hidden = false;
  $("#cancel").onclick = () => api(`/v1/jobs/${jobId}/cancel`, { method: "POST" }).catch((e) => showError(e.message));
  for (;;) {
    const job = await (await api(`/v1/jobs/${jobId}`)).json();
    const stage = {
      queued: "Queued",
      running: `Detecting: ${job.frames_done} of ${job.frames_total} frames`,
      succeeded: "Done",
    }[job.status];
    setProgress(stage || job.status, job.progress);
    if (job.status === "succeeded") break;
    if (job.status === "failed") throw new Error(`The job failed (${job.error.code}): ${job.error.message}`);
    if (job.status === "cancelled") throw new Error("The job was cancelled.");
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  $("#cancel").hidden = true;
  await show(jobId);
}

async function show(jobId) {
  const [result, curve, thumbs] = await Promise.all([
    api(`/v1/jobs/${jobId}/result?format=json`).then((r) => r.json()),
    api(`/v1/jobs/${jobId}/result?format=curve`).then((r) => r.json()),
    api(`/v1/jobs/${jobId}/result?format=thumbnails`).then((r) => r.blob()),
  ]);
  if (state.thumbs) URL.revokeObjectURL(state.thumbs);
  Object.assign(state, { job: jobId, result, curve, thumbs: URL.createObjectURL(thumbs), current: -1 });
  $("#result").hidden = false;
  const video = result.video;
  $("#summary").textContent = `${result.shot_count} shots in ${video.duration.toFixed(1)} s`;
  // the picture as shown (sample aspect ratio, then rotation), where it differs from the coded size
  const shown = video.display_width || video.width;
  const shownHeight = video.display_height || video.height;
  const turned = video.rotation ? `, rotated ${video.rotation}°` : "";
  const display =
    shown !== video.width || shownHeight !== video.height || turned ? ` (shown ${shown}×${shownHeight}${turned})` : "";
  $("#details").textContent =
    `${video.width}×${video.height}${display} ${video.codec}, ${video.fps} fps, ${video.frame_count} frames · ` +
    `threshold ${result.threshold} · ${result.model.name} v${result.model.version}`;
  // decode damage and the like: the job succeeded, but say where the shots may be less sure
  const warnings = result.warnings || [];
  $("#warnings").replaceChildren(
    ...warnings.map((w) => {
      const item = document.createElement("li");
      const where = w.frames ? ` (frames ${w.frames[0]}–${w.frames[1]})` : "";
      item.textContent = `${w.code}${where}: ${w.message || ""}`;
      return item;
    }),
  );
  $("#warnings").hidden = !warnings.length;
  const player = $("#video");
  // a reopened job (#job=) plays its video from storage through a presigned GET
  const source = state.videoUrl || (await api(`/v1/jobs/${jobId}/video`).then((r) => r.json())).url;
  if (player.src !== source) player.src = source;
  player.hidden = false;
  state.clips = null;
  $("#clips-status").textContent = "";
  $("#clips-zip").hidden = true;
  renderTimeline();
  renderSpans();
  renderTable();
  drawPlot();
}

function seek(shot) {
  const player = $("#video");
  if (!player.src) return;
  player.currentTime = (shot.start_frame + 0.5) / state.result.video.fps; // inside the shot's first frame
  highlight(shot.index);
}

function renderTimeline() {
  const { result, thumbs } = state;
  const sheet = result.previews.thumbnails;
  const strip = $("#timeline");
  strip.replaceChildren();
  const scale = 72 / sheet.tile_height;
  for (const shot of result.shots) {
    const tile = document.createElement("button");
    tile.className = "shot";
    tile.title = `shot ${shot.index + 1}: ${shot.start_timecode} – ${shot.end_timecode}`;
    const thumb = document.createElement("span");
    thumb.className = "thumb";
    thumb.style.width = `${sheet.tile_width * scale}px`;
    thumb.style.height = `${sheet.tile_height * scale}px`;
    if (shot.index < sheet.count) {
      const column = shot.index % sheet.columns;
      const row = Math.floor(shot.index / sheet.columns);
      thumb.style.backgroundImage = `url(${thumbs})`;
      thumb.style.backgroundSize = `${sheet.columns * sheet.tile_width * scale}px auto`;
      thumb.style.backgroundPosition = `-${column * sheet.tile_width * scale}px -${row * sheet.tile_height * scale}px`;
    }
    const transition = openingTransition(shot);
    const label = document.createElement("span");
    if (transition) label.append(badge(transition));
    label.append(shot.start_timecode);
    tile.append(thumb, label);
    tile.onclick = () => seek(shot);
    strip.append(tile);
  }
}

function openingTransition(shot) {
  const transitions = state.result.transitions || [];
  return shot.transition === undefined ? null : transitions[shot.transition] || null;
}

function spanFrames(span) {
  return span.end_frame - span.start_frame + 1;
}

function badge(transition) {
  const mark = document.createElement("span");
  mark.className = `badge ${transition.type}`;
  mark.style.background = SPAN_COLOURS[transition.type] || "";
  mark.textContent = transition.type === "cut" ? "cut" : `${transition.type} ${spanFrames(transition)}f`;
  return mark;
}

function spanTitle(kind, span) {
  return `${kind} ${span.start_frame}–${span.end_frame} (${spanFrames(span)} frames), confidence ${span.confidence}`;
}

function renderSpans() {
  const { result } = state;
  const transitions = result.transitions || [];
  const cues = result.technical_cues || [];
  const total = Math.max(1, result.video.frame_count);
  const place = (track, kind, span) => {
    const block = document.createElement("button");
    block.className = `span ${kind}`;
    block.style.left = `${(100 * span.start_frame) / total}%`;
    block.style.width = `${(100 * spanFrames(span)) / total}%`;
    block.style.background = SPAN_COLOURS[kind] || "#888";
    block.title = spanTitle(kind, span);
    block.onclick = () => {
      const player = $("#video");
      if (player.src) player.currentTime = (span.start_frame + 0.5) / result.video.fps;
    };
    track.append(block);
  };
  const transitionTrack = $("#transition-track");
  const cueTrack = $("#cue-track");
  transitionTrack.replaceChildren();
  cueTrack.replaceChildren();
  transitions.forEach((t) => place(transitionTrack, t.type, t));
  cues.forEach((c) => place(cueTrack, c.type, c));
  $("#spans").hidden = !transitions.length && !cues.length;
  const kinds = [...new Set([...transitions.map((t) => t.type), ...cues.map((c) => c.type)])];
  const legend = $("#legend");
  legend.replaceChildren();
  for (const kind of kinds) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = SPAN_COLOURS[kind] || "#888";
    legend.append(swatch, kind);
  }
  legend.hidden = !kinds.length;
}

function renderTable() {
  const body = $("#shots tbody");
  body.replaceChildren();
  for (const shot of state.result.shots) {
    const row = document.createElement("tr");
    const cells = [
      shot.index + 1,
      shot.start_timecode,
      shot.end_timecode,
      `${shot.start_frame}–${shot.end_frame}`,
      `${(shot.end_time - shot.start_time).toFixed(2)} s`,
      shot.confidence.toFixed(3),
      openingTransition(shot) ? badge(openingTransition(shot)) : "",
    ];
    for (const value of cells) {
      const cell = document.createElement("td");
      if (value instanceof Node) cell.append(value);
      else cell.textContent = value;
      row.append(cell);
    }
    const clipCell = document.createElement("td");
    clipCell.className = "clip";
    const clip = state.clips && state.clips.get(shot.index);
    if (clip) {
      const link = Object.assign(document.createElement("a"), { href: clip.url, download: clip.file, textContent: "clip" });
      link.title = `frames ${clip.start_frame}–${clip.end_frame}`;
      link.onclick = (event) => event.stopPropagation(); // a download, not a seek
      clipCell.append(link);
    }
    row.append(clipCell);
    row.onclick = () => seek(shot);
    body.append(row);
  }
}

function drawPlot() {
  const canvas = $("#plot");
  const { curve, result } = state;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio;
  canvas.height = 160 * ratio;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 6 * ratio;
  const n = curve.single_frame.length;
  const x = (i) => (i / Math.max(1, n - 1)) * w;
  const y = (p) => h - pad - p * (h - 2 * pad);
  ctx.clearRect(0, 0, w, h);
  // transitions shade their frames' column; cues are a band along the bottom
  const shade = (span, colour, top, height) => {
    const left = x(span.start_frame / curve.stride);
    const right = x((span.end_frame + 1) / curve.stride);
    ctx.fillStyle = colour;
    ctx.fillRect(left, top, Math.max(ratio, right - left), height);
  };
  ctx.globalAlpha = 0.22;
  for (const t of result.transitions || []) if (t.type !== "cut") shade(t, SPAN_COLOURS[t.type] || "#888", 0, h);
  ctx.globalAlpha = 0.8;
  for (const c of result.technical_cues || []) shade(c, SPAN_COLOURS[c.type] || "#888", h - pad, pad);
  ctx.globalAlpha = 1;
  const line = (values, colour) => {
    ctx.beginPath();
    values.forEach((p, i) => (i ? ctx.lineTo(x(i), y(p)) : ctx.moveTo(x(i), y(p))));
    ctx.strokeStyle = colour;
    ctx.lineWidth = ratio;
    ctx.stroke();
  };
  line(curve.many_hot, "#b8bec6");
  line(curve.single_frame, "#12a150");
  ctx.setLineDash([6 * ratio, 4 * ratio]);
  ctx.beginPath();
  ctx.moveTo(0, y(curve.threshold));
  ctx.lineTo(w, y(curve.threshold));
  ctx.strokeStyle = "#d23";
  ctx.stroke();
  ctx.setLineDash([]);
  const position = state.current >= 0 ? result.shots[state.current].start_frame / curve.stride : -1;
  if (position >= 0) {
    ctx.fillStyle = "rgba(23,105,224,.25)";
    ctx.fillRect(x(position) - ratio, 0, 2 * ratio, h);
  }
  canvas.onclick = (event) => {
    const frame = (event.offsetX / canvas.clientWidth) * curve.frame_count;
    const shot = [...result.shots].reverse().find((s) => s.start_frame <= frame) || result.shots[0];
    const player = $("#video");
    if (player.src) player.currentTime = frame / result.video.fps;
    highlight(shot.index);
  };
}

function highlight(index) {
  if (index === state.current) return;
  state.current = index;
  document.querySelectorAll(".shot.current, tr.current").forEach((el) => el.classList.remove("current"));
  const tile = $("#timeline").children[index];
  const row = $("#shots tbody").children[index];
  if (tile) {
    tile.classList.add("current");
    tile.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  if (row) row.classList.add("current");
  drawPlot();
}

async function download(format) {
  try {
    const blob = await (await api(`/v1/jobs/${state.job}/result?format=${format}`)).blob();
    const suffix = { overview: "png" }[format] || format;
    const link = Object.assign(document.createElement("a"), {
      href: URL.createObjectURL(blob),
      download: `${state.job}.${suffix}`,
    });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    showError(error.message);
  }
}

async function makeClips() {
  const jobId = state.job;
  const mode = $("#clips-mode").value;
  const status = $("#clips-status");
  $("#make-clips").disabled = true;
  try {
    let job = await (await api(`/v1/jobs/${jobId}/clips`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ mode, shots: "all" }),
    })).json();
    while (!["succeeded", "failed", "cancelled"].includes(job.status)) {
      status.textContent = `cutting clips: ${job.progress.toFixed(0)}%`;
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await (await api(`/v1/jobs/${job.id}`)).json();
    }
    if (job.status !== "succeeded") throw new Error(`The clips job ${job.status}${job.error ? `: ${job.error.message}` : ""}`);
    const manifest = await (await api(`/v1/jobs/${job.id}/result?format=json`)).json();
    if (state.job !== jobId) return; // another job was opened meanwhile
    state.clips = new Map(manifest.clips.map((clip) => [clip.shot, clip]));
    status.textContent = `${manifest.clips.length} clips (${mode})`;
    Object.assign($("#clips-zip"), { href: manifest.zip.url, hidden: false });
    renderTable();
  } catch (error) {
    status.textContent = "";
    showError(error.message);
  } finally {
    $("#make-clips").disabled = false;
  }
}

function init() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("key")) {
    localStorage.setItem("videoapi-key", params.get("key"));
    history.replaceState(null, "", location.pathname); // the key leaves the address bar
  }
  $("#api-key").value = localStorage.getItem("videoapi-key") || "";
  $("#api-key").onchange = () => localStorage.setItem("videoapi-key", apiKey());
  $("#file").onchange = () => ($("#run").disabled = !$("#file").files.length);
  $("#run").onclick = run;
  document.querySelectorAll(".downloads button").forEach((b) => (b.onclick = () => download(b.dataset.format)));
  $("#make-clips").onclick = makeClips;
  $("#video").ontimeupdate = () => {
    if (!state.result) return;
    const frame = $("#video").currentTime * state.result.video.fps;
    const shot = [...state.result.shots].reverse().find((s) => s.start_frame <= frame);
    if (shot) highlight(shot.index);
  };
  window.onresize = () => state.curve && drawPlot();
  if (params.get("job")) follow(params.get("job")).catch((error) => showError(error.message));
}

init();
