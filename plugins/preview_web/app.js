// flowact preview page: frames + audio over one websocket, played on a shared media clock.
// Binary header (little-endian, 16 bytes): u8 type, 3 pad, u32 arg, f64 pts. 1 video, 2 audio, 3 mic.
"use strict";
const VIDEO = 1, AUDIO = 2, MIC = 3, LEAD = 0.15; // seconds of buffering before playback
const $ = (id) => document.getElementById(id);
const canvas = $("video"), ctx2d = canvas.getContext("2d");
const P = window.preview = { // read by the tests and handy in the console
  frames: 0, framesReceived: 0, audioBytes: 0, audioPeak: 0, lastAudioPeak: 0, audioChunks: 0, audioScheduled: 0, state: "",
  transcripts: [], metrics: [], avOffsetMs: 0, connected: false, notices: [],
};
let ws = null, hello = null, audioCtx = null, base = null; // base: media pts -> clock time offset
const frameQueue = []; // {pts, bitmap} sorted by pts
const playing = new Set(); // scheduled audio sources, until they end
let generation = 0; // moves on a flush: frames still decoding from before it are dropped
P.flushes = 0;
P.pending = () => ({ audio: playing.size, frames: frameQueue.length });

function clockNow() { // seconds, on the audio clock when it runs, else wall time
  return audioCtx && audioCtx.state === "running" ? audioCtx.currentTime : performance.now() / 1000;
}
function mediaNow() { return base === null ? null : clockNow() - base; }
function anchor(pts) { base = clockNow() + LEAD - pts; }

function ensureAudio() {
  if (!audioCtx) {
    try { audioCtx = new AudioContext(); } catch (e) { return; }
    audioCtx.onstatechange = () => { base = null; $("sound").hidden = audioCtx.state === "running"; };
  }
  if (audioCtx.state !== "running") audioCtx.resume().catch(() => {});
}
$("sound").onclick = () => ensureAudio();

function log(cls, text) {
  const div = document.createElement("div");
  div.className = cls; div.textContent = text;
  $("log").appendChild(div); $("log").scrollTop = 1e9;
  return div;
}

function onAudio(view, buf) {
  const rate = view.getUint32(4, true), pts = view.getFloat64(8, true);
  const pcm = new Int16Array(buf, 16);
  P.audioBytes += pcm.byteLength; P.audioChunks += 1;
  let peak = 0;
  for (let i = 0; i < pcm.length; i++) peak = Math.max(peak, Math.abs(pcm[i]));
  P.audioPeak = Math.max(P.audioPeak, peak); P.lastAudioPeak = peak;
  if (base === null) anchor(pts);
  if (!audioCtx || audioCtx.state !== "running") return; // muted until the user allows sound
  let when = base + pts;
  if (when < audioCtx.currentTime) { anchor(pts); when = base + pts; } // late: re-anchor, skip no audio
  const ab = audioCtx.createBuffer(1, pcm.length, rate), ch = ab.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = audioCtx.createBufferSource();
  src.buffer = ab; src.connect(audioCtx.destination); src.start(when);
  playing.add(src); src.onended = () => playing.delete(src);
  P.audioScheduled += 1;
}

async function onVideo(view, buf) {
  const pts = view.getFloat64(8, true);
  P.framesReceived += 1;
  if (base === null) anchor(pts);
  const gen = generation;
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(buf, 16)], { type: "image/jpeg" }));
  if (gen !== generation) { bitmap.close(); return; } // a frame of speech cut while it decoded
  frameQueue.push({ pts, bitmap });
  frameQueue.sort((a, b) => a.pts - b.pts);
  while (frameQueue.length > 100) frameQueue.shift().bitmap.close(); // never grow without bound
}

function flush() { // barge-in: the cut speech stops now, audio and frames together
  P.flushed = { audio: playing.size, frames: frameQueue.length }; // what it dropped (tests)
  for (const src of playing) { try { src.stop(); } catch (e) { /* not started yet */ } }
  playing.clear();
  while (frameQueue.length) frameQueue.shift().bitmap.close();
  generation += 1;
  base = null; // the next chunk re-anchors: no gap for the dropped media's time
  P.flushes += 1;
}

function draw() { // show the newest frame whose time has come
  const now = mediaNow();
  let shown = null;
  while (now !== null && frameQueue.length && frameQueue[0].pts <= now) {
    if (shown) shown.bitmap.close();
    shown = frameQueue.shift();
  }
  if (shown) {
    if (canvas.width !== shown.bitmap.width) { canvas.width = shown.bitmap.width; canvas.height = shown.bitmap.height; }
    ctx2d.drawImage(shown.bitmap, 0, 0);
    shown.bitmap.close();
    P.frames += 1;
    P.avOffsetMs = Math.round((now - shown.pts) * 1000); // how late the frame is against the audio clock
  }
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);

function onJson(msg) {
  if (msg.type === "hello") {
    hello = msg; canvas.width = msg.width; canvas.height = msg.height;
    $("mic").hidden = !msg.microphone;
  } else if (msg.type === "state") {
    P.state = msg.state; $("state").textContent = msg.state; $("state").className = msg.state;
  } else if (msg.type === "transcript") {
    P.transcripts.push(msg);
    if (msg.final) log(msg.role, (msg.role === "user" ? "you: " : "agent: ") + msg.text);
  } else if (msg.type === "metrics") {
    P.metrics.push(msg); if (P.metrics.length > 120) P.metrics.shift();
    drawChart();
  } else if (msg.type === "flush") {
    flush();
  } else if (msg.type === "notice") {
    P.notices.push(msg.text); log("notice", msg.text);
  }
}

function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { P.connected = true; $("conn").textContent = ""; };
  ws.onclose = () => { P.connected = false; $("conn").textContent = "disconnected, retrying"; base = null;
                       setTimeout(connect, 1000); };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") { onJson(JSON.parse(ev.data)); return; }
    const view = new DataView(ev.data), type = view.getUint8(0);
    if (type === AUDIO) onAudio(view, ev.data);
    else if (type === VIDEO) onVideo(view, ev.data);
  };
}
connect();
ensureAudio(); // runs at once where autoplay is allowed, else the "sound on" button resumes it

$("form").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (text && ws && ws.readyState === 1) { ws.send(JSON.stringify({ type: "text", text })); $("text").value = ""; }
};

// Browser microphone -> 16 kHz mono int16 blocks. ScriptProcessor keeps this a single file
// (an AudioWorklet would need a second module); it is deprecated but supported everywhere.
let micStream = null;
$("mic").onclick = async () => {
  if (micStream) { micStream.getTracks().forEach((t) => t.stop()); micStream = null; $("mic").textContent = "mic"; return; }
  micStream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
  const mctx = new AudioContext({ sampleRate: 16000 });
  const src = mctx.createMediaStreamSource(micStream), node = mctx.createScriptProcessor(1024, 1, 1);
  let sent = 0;
  node.onaudioprocess = (e) => {
    if (!micStream || !ws || ws.readyState !== 1) return;
    const f = e.inputBuffer.getChannelData(0), out = new ArrayBuffer(16 + f.length * 2);
    const v = new DataView(out);
    v.setUint8(0, MIC); v.setUint32(4, mctx.sampleRate, true); v.setFloat64(8, sent / mctx.sampleRate, true);
    for (let i = 0; i < f.length; i++) v.setInt16(16 + 2 * i, Math.max(-1, Math.min(1, f[i])) * 32767, true);
    sent += f.length; ws.send(out);
  };
  src.connect(node); node.connect(mctx.destination);
  $("mic").textContent = "mic on";
};

function drawChart() { // fps and A/V offset over time (lines), first-frame latency per turn (bars)
  const c = $("chart"), g = c.getContext("2d"), W = c.width, H = c.height, m = P.metrics;
  g.clearRect(0, 0, W, H);
  const turns = {};
  for (const x of m) if (x.last_turn && x.last_turn.first_frame !== undefined) turns[x.last_turn.turn] = x.last_turn.first_frame;
  const keys = Object.keys(turns).slice(-12);
  keys.forEach((k, i) => { // bars: seconds from end of user input to the first speaking frame (scale 0..3 s)
    const h = Math.min(1, turns[k] / 3) * (H - 20);
    g.fillStyle = "#3b5998"; g.fillRect(W - (keys.length - i) * 22, H - h, 18, h);
  });
  const line = (key, scale, color) => {
    g.strokeStyle = color; g.beginPath();
    m.forEach((x, i) => { const y = H - Math.max(0, Math.min(1, (x[key] || 0) / scale)) * (H - 20);
                          const X = (i / Math.max(30, m.length - 1)) * (W - 10); i ? g.lineTo(X, y) : g.moveTo(X, y); });
    g.stroke();
  };
  line("fps", 60, "#2ecc71");
  line("av_offset_ms", 200, "#e67e22");
  g.fillStyle = "#ccc"; g.font = "11px sans-serif";
  g.fillText("fps (0-60)", 4, 12); g.fillStyle = "#e67e22"; g.fillText("A/V offset ms (0-200)", 80, 12);
  g.fillStyle = "#7f9cf5"; g.fillText("turn latency s (0-3)", 230, 12);
  const last = m[m.length - 1] || {};
  $("stats").textContent = `fps ${last.fps ?? "-"}  frames ${last.frames ?? "-"}  A/V ${last.av_offset_ms ?? "-"} ms` +
    `  page A/V ${P.avOffsetMs} ms\nturn ${last.last_turn ? JSON.stringify(last.last_turn) : "-"}`;
}
