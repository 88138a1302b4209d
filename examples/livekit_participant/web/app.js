// Talk to the flowact avatar in a LiveKit room: join with a server URL + user token (form, or
// ?url=...&token=...), see and hear the avatar, speak (mic toggle) or type (chat), read live captions
// and the agent's state, and a stats overlay. Topics and attributes are the LiveKit ecosystem's: chat
// on `lk.chat`, transcripts on `lk.transcription`, the agent state in the attribute `lk.agent.state`.
// Extra URL params: autojoin=1 (join on load), mic=1 (microphone on at join), stats=1 (overlay shown),
// mouth=x0,y0,x1,y1 (fractions of the frame: record the mouth region's pixels, for tests).
/* global LivekitClient, AvatarStats */
"use strict";

const { Room, RoomEvent, Track, ConnectionState } = LivekitClient;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const STATE_ATTR = "lk.agent.state";

// Everything the page saw, for tests and benchmarks (times: performance.now() ms).
const record = { joinClickedAt: null, joinedAt: null, captions: [], states: [], events: [], errors: [] };
let room = null;
let stats = null;
let statsTimer = null;
let micOn = false;
let engineBusy = null; // { promise, resolve } while the connection is being re-established

// livekit-client 2.23.0 announces Reconnected after a full reconnect while its engine still waits
// (~2 s, minReconnectWait) with its reconnect flag set; a chat line sent then is kept for a resume
// replay that a full reconnect never does, and is lost. So chat waits until the engine has settled.
function watchEngine(engine) {
  const busy = () => {
    if (engineBusy) return;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    engineBusy = { promise, resolve };
  };
  // after the engine's own bookkeeping (it clears its flag right after these events)
  const idle = () => setTimeout(() => { if (engineBusy) { engineBusy.resolve(); engineBusy = null; } }, 0);
  engine.on("resuming", busy).on("restarting", busy);
  engine.on("resumed", idle).on("restarted", idle).on("disconnected", idle).on("closing", idle);
}

function note(kind, detail = "") {
  record.events.push([performance.now(), kind, detail]);
  if (record.events.length > 500) record.events.shift();
}

function log(cls, text) {
  const div = document.createElement("div");
  div.className = cls;
  div.textContent = text;
  $("log").appendChild(div);
  while ($("log").childElementCount > 200) $("log").firstChild.remove();
  $("log").scrollTop = $("log").scrollHeight;
}

function banner(text, { error = false, action = null } = {}) {
  const b = $("banner");
  b.hidden = !text;
  b.className = error ? "error" : "";
  b.textContent = text || "";
  if (action) {
    const btn = document.createElement("button");
    btn.textContent = action.label;
    btn.onclick = action.run;
    b.append(" ", btn);
  }
}

function setState(state) {
  $("state").textContent = state;
  $("state").dataset.state = state;
  record.states.push([performance.now(), state]);
}

// --- captions: one line per segment, replaced as partial transcripts arrive ----------------------
const captionLines = new Map();

function showCaption(seg, who, text, final) {
  record.captions.push({ t: performance.now(), seg, who, text, final });
  if (record.captions.length > 500) record.captions.shift();
  const isUser = who === "you";
  let line = captionLines.get(seg);
  if (!line) {
    line = document.createElement("div");
    line.className = isUser ? "user" : "agent";
    captionLines.set(seg, line);
    $("caption").replaceChildren(line);
  }
  line.textContent = text;
  if (final) {
    captionLines.delete(seg);
    log(isUser ? "user" : "agent", `${isUser ? "you" : who}: ${text}`);
    setTimeout(() => { if (!line.isConnected || captionLines.size) return; line.remove(); }, 4000);
  }
}

async function onTranscription(reader, who) {
  const attrs = reader.info.attributes || {};
  const seg = attrs["lk.segment_id"] || reader.info.id;
  const final = attrs["lk.transcription_final"] !== "false";
  const name = seg.startsWith("user") || who.identity === room?.localParticipant.identity ? "you" : who.identity;
  let text = "";
  for await (const chunk of reader) {
    text += chunk;
    showCaption(seg, name, text, false);
  }
  showCaption(seg, name, text, final);
}

// --- media -----------------------------------------------------------------------------------
function onTrackSubscribed(track, pub, participant) {
  note("subscribed", `${participant.identity} ${track.kind}`);
  if (track.kind === Track.Kind.Video) {
    const el = $("avatar");
    track.attach(el);
    stats.watchVideo(el, track);
  } else if (track.kind === Track.Kind.Audio) {
    track.attach($("avatar-audio"));
    stats.watchAudio(track);
  }
}

function onAttributes(changed, participant) {
  if (STATE_ATTR in changed && participant !== room.localParticipant) setState(changed[STATE_ATTR]);
}

async function setMic(on) {
  micOn = on;
  $("mic").disabled = true;
  try {
    await room.startAudio();
    const pub = await room.localParticipant.setMicrophoneEnabled(on);
    if (on && pub && pub.track) stats.watchMic(pub.track.mediaStreamTrack, (rms) => {
      $("mic-level").firstElementChild.style.width = `${Math.min(100, rms * 400)}%`;
    });
    note(on ? "mic-on" : "mic-off");
  } catch (e) {
    micOn = false;
    banner(`Microphone: ${e.message || e}`, { error: true });
    record.errors.push(String(e));
  } finally {
    $("mic").disabled = false;
    $("mic").textContent = micOn ? "Microphone on" : "Microphone off";
    $("mic").classList.toggle("on", micOn);
  }
}

// --- join / leave / reconnect -------------------------------------------------------------------
async function join() {
  const url = $("url").value.trim(), token = $("token").value.trim();
  if (!url || !token) return;
  record.joinClickedAt = performance.now();
  note("join-click");
  $("join-btn").disabled = true;
  banner("Connecting…");
  stats = stats || new AvatarStats({ mouth: params.get("mouth")?.split(",").map(Number) || null });
  await stats.start();
  // aec=0: no echo cancellation (headsets; a test's fake microphone that has no echo to cancel)
  const capture = params.get("aec") === "0" ? { echoCancellation: false } : {};
  room = new Room({ adaptiveStream: false, dynacast: false, audioCaptureDefaults: capture });
  watchEngine(room.engine);
  room.on(RoomEvent.TrackSubscribed, onTrackSubscribed);
  room.on(RoomEvent.ParticipantAttributesChanged, onAttributes);
  room.on(RoomEvent.ParticipantConnected, (p) => {
    note("participant", p.identity);
    log("sys", `${p.identity} joined`);
    if (p.attributes[STATE_ATTR]) setState(p.attributes[STATE_ATTR]);
  });
  room.on(RoomEvent.ParticipantDisconnected, (p) => log("sys", `${p.identity} left`));
  room.on(RoomEvent.Reconnecting, () => { note("reconnecting"); banner("Connection lost: reconnecting…"); });
  room.on(RoomEvent.Reconnected, () => { note("reconnected"); banner(""); log("sys", "reconnected"); });
  room.on(RoomEvent.Disconnected, (reason) => {
    note("disconnected", String(reason));
    setState("offline");
    $("leave-btn").hidden = true;
    $("join-btn").disabled = false;
    $("mic").disabled = $("text").disabled = $("chat").querySelector("button").disabled = true;
    banner(`Disconnected (${reason ?? "unknown"}).`, { error: true, action: { label: "Rejoin", run: join } });
  });
  room.on(RoomEvent.AudioPlaybackStatusChanged, () => {
    if (!room.canPlaybackAudio) banner("Audio is blocked by the browser.", { action: { label: "Enable audio", run: () => room.startAudio().then(() => banner("")) } });
  });
  room.registerTextStreamHandler("lk.transcription", (reader, who) => {
    onTranscription(reader, who).catch((e) => record.errors.push(`caption: ${e}`));
  });
  try {
    await room.connect(url, token);
  } catch (e) {
    record.errors.push(`connect: ${e}`);
    banner(`Cannot join: ${e.message || e}`, { error: true, action: { label: "Retry", run: join } });
    $("join-btn").disabled = false;
    return;
  }
  record.joinedAt = performance.now();
  note("joined", room.name);
  banner("");
  log("sys", `joined ${room.name} as ${room.localParticipant.identity}`);
  for (const p of room.remoteParticipants.values()) if (p.attributes[STATE_ATTR]) setState(p.attributes[STATE_ATTR]);
  await room.startAudio().catch(() => {});
  $("leave-btn").hidden = false;
  $("mic").disabled = $("text").disabled = $("chat").querySelector("button").disabled = false;
  if (params.get("mic") === "1") await setMic(true);
}

async function sendChat(ev) {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text || !room) return;
  $("text").value = "";
  await room.startAudio().catch(() => {});
  if (engineBusy) await Promise.race([engineBusy.promise, new Promise((r) => setTimeout(r, 10000))]);
  await room.localParticipant.sendText(text, { topic: "lk.chat" });
  record.captions.push({ t: performance.now(), seg: "chat", who: "you", text, final: true });
  log("user", `you (chat): ${text}`);
}

function toggleStats(show) {
  $("stats").hidden = !show;
  clearInterval(statsTimer);
  if (show) statsTimer = setInterval(() => { if (stats) $("stats").textContent = stats.text(); }, 500);
}

$("url").value = params.get("url") || "";
$("token").value = params.get("token") || "";
$("join").onsubmit = (ev) => { ev.preventDefault(); join().catch((e) => record.errors.push(String(e))); };
$("leave-btn").onclick = () => room && room.disconnect();
$("mic").onclick = () => setMic(!micOn);
$("chat").onsubmit = (ev) => sendChat(ev).catch((e) => record.errors.push(`chat: ${e}`));
$("stats-btn").onclick = () => toggleStats($("stats").hidden);
toggleStats(params.get("stats") === "1");
window.flowact = { record, get stats() { return stats; }, get room() { return room; },
  connected: () => room?.state === ConnectionState.Connected };
if (params.get("autojoin") === "1") join().catch((e) => record.errors.push(String(e)));
