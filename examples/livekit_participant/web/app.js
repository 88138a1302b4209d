// Join the room given in the URL (?url=wss://...&token=...), show the avatar, talk by mic or chat.
// Topics and attributes are the LiveKit ecosystem's: chat on `lk.chat`, transcripts on
// `lk.transcription`, the agent state in the participant attribute `lk.agent.state`.
const { Room, RoomEvent, Track } = LivekitClient;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

function log(cls, text) {
  const div = document.createElement("div");
  div.className = cls;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
}

async function main() {
  const url = params.get("url"), token = params.get("token");
  if (!url || !token) {
    log("sys", "Open this page with ?url=<ws(s)://server>&token=<user token> (run.py prints the link).");
    return;
  }
  const room = new Room({ adaptiveStream: true });
  room.on(RoomEvent.TrackSubscribed, (track) => {
    const el = track.attach();
    if (track.kind === Track.Kind.Video) $("stage").replaceChildren(el);
    else document.body.appendChild(el);
  });
  room.on(RoomEvent.ParticipantAttributesChanged, (changed, participant) => {
    if ("lk.agent.state" in changed) $("state").textContent = `${participant.identity}: ${changed["lk.agent.state"]}`;
  });
  room.on(RoomEvent.Disconnected, () => log("sys", "disconnected"));
  room.registerTextStreamHandler("lk.transcription", async (reader, who) => {
    const text = await reader.readAll();
    const seg = reader.info.attributes?.["lk.segment_id"] ?? "";
    log(seg.startsWith("user") ? "user" : "agent", `${seg.startsWith("user") ? "you" : who.identity}: ${text}`);
  });
  await room.connect(url, token);
  log("sys", `joined ${room.name} as ${room.localParticipant.identity}`);
  await room.startAudio(); // browsers need a user gesture for audio; the mic button also retries

  let micOn = false;
  $("mic").disabled = false;
  $("mic").onclick = async () => {
    micOn = !micOn;
    await room.startAudio();
    await room.localParticipant.setMicrophoneEnabled(micOn);
    $("mic").textContent = micOn ? "Mute mic" : "Unmute mic";
  };
  $("text").disabled = false;
  $("chat").querySelector("button").disabled = false;
  $("chat").onsubmit = async (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    await room.startAudio();
    await room.localParticipant.sendText(text, { topic: "lk.chat" });
  };
}

main().catch((e) => log("sys", `error: ${e}`));
