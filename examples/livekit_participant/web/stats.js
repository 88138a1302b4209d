// What this page receives from the avatar, measured in the page: frame rate (requestVideoFrameCallback),
// audio level (an AudioWorklet on the received track), and WebRTC stats (round-trip time, packet
// loss, jitter buffers, the A/V offset Chromium plays out). `AvatarStats.text()` is the overlay a
// support team reads; `timeline()` is the raw record (frame times, mouth-region pixels, audio and mic
// levels) the end-to-end tests and bench/browser.py analyse. Nothing here talks to a server.
/* exported AvatarStats */
"use strict";

const LEVEL_WORKLET = `
registerProcessor("flowact-level", class extends AudioWorkletProcessor {
  constructor() { super(); this.sum = 0; this.n = 0; this.block = Math.round(sampleRate / 100); }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    const len = ch ? ch.length : 128;
    if (ch) for (let i = 0; i < len; i++) this.sum += ch[i] * ch[i];
    this.n += len;
    if (this.n >= this.block) {  // one 10 ms level: [context time of its middle, rms]
      this.port.postMessage([currentTime + len / sampleRate - this.n / sampleRate / 2, Math.sqrt(this.sum / this.n)]);
      this.sum = 0; this.n = 0;
    }
    return true;
  }
});`;

const KEEP = 60000; // bound every record (10 minutes of audio levels, 40 minutes of frames at 25 fps)

function push(list, item) {
  list.push(item);
  if (list.length > KEEP) list.splice(0, list.length - KEEP);
}

class AvatarStats {
  /** `mouth`: [x0, y0, x1, y1] as fractions of the frame, or null (no mouth-region record). */
  constructor({ mouth = null } = {}) {
    this.mouth = mouth;
    this.ctx = null;
    this.frames = []; // [display time ms, presented frames, mouth luma, mouth motion]
    this.audio = []; // [time heard ms, rms] of the avatar's audio, every 10 ms
    this.mic = []; // [time ms, rms] of our own microphone, every 10 ms
    this.firstFrameAt = null;
    this.firstAudioAt = null;
    this.net = {};
    this.netHistory = []; // [time ms, net] once a second
    this._video = null;
    this._tracks = { video: null, audio: null };
    this._prev = { at: 0, stats: {} };
    this._mouthPrev = null;
    this._canvas = null;
    this._meters = [];
    this._poll = null;
  }

  /** Create the AudioContext; call from a user gesture (the join click). */
  async start() {
    if (this.ctx) return;
    this.ctx = new AudioContext();
    const url = URL.createObjectURL(new Blob([LEVEL_WORKLET], { type: "text/javascript" }));
    this._worklet = this.ctx.audioWorklet.addModule(url);
    await this._worklet;
    if (this.ctx.state !== "running") await this.ctx.resume().catch(() => {});
    this._poll = setInterval(() => this.poll().catch(() => {}), 1000);
  }

  stop() {
    clearInterval(this._poll);
    this._poll = null;
    for (const m of this._meters) m.disconnect();
    this._meters = [];
  }

  /** The received avatar video element: count frames and sample the mouth region as they show. */
  watchVideo(el, track) {
    this._tracks.video = track;
    if (this._video === el) return; // a new track on the same element (after a reconnect): one loop
    this._video = el;
    const onFrame = (now, meta) => {
      const t = meta.expectedDisplayTime || now;
      if (this.firstFrameAt === null) this.firstFrameAt = t;
      const [luma, motion] = this._mouthSample(el, meta.width, meta.height);
      push(this.frames, [t, meta.presentedFrames, luma, motion]);
      if (this._video === el) el.requestVideoFrameCallback(onFrame);
    };
    el.requestVideoFrameCallback(onFrame);
  }

  watchAudio(track) {
    this._tracks.audio = track;
    this._meter(track.mediaStreamTrack, (t, rms) => {
      if (this.firstAudioAt === null && rms > 0.01) this.firstAudioAt = t;
      push(this.audio, [t, rms]);
    });
  }

  watchMic(mediaStreamTrack, onLevel) {
    this._meter(mediaStreamTrack, (t, rms) => {
      push(this.mic, [t, rms]);
      if (onLevel) onLevel(rms);
    });
  }

  async _meter(mediaStreamTrack, onLevel) {
    if (!this.ctx) return;
    await this._worklet;
    const src = this.ctx.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
    const node = new AudioWorkletNode(this.ctx, "flowact-level", { numberOfOutputs: 1 });
    const mute = this.ctx.createGain();
    mute.gain.value = 0;
    src.connect(node).connect(mute).connect(this.ctx.destination); // pulled by the graph, heard by nobody
    node.port.onmessage = (ev) => onLevel(this._heardAt(ev.data[0]), ev.data[1]);
    this._meters.push(src, node, mute);
  }

  /** performance.now() time at which audio context time `t` is (or was) output. */
  _heardAt(t) {
    const ts = this.ctx.getOutputTimestamp();
    if (ts.performanceTime > 0) return ts.performanceTime + (t - ts.contextTime) * 1000;
    return performance.now() + (t - this.ctx.currentTime + (this.ctx.outputLatency || 0)) * 1000;
  }

  _mouthSample(el, w, h) {
    if (!this.mouth || !w || !h) return [null, null];
    const [x0, y0, x1, y1] = this.mouth;
    const cw = 32, ch = 16;
    if (!this._canvas) {
      this._canvas = document.createElement("canvas");
      this._canvas.width = cw;
      this._canvas.height = ch;
      this._g = this._canvas.getContext("2d", { willReadFrequently: true });
    }
    this._g.drawImage(el, x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h, 0, 0, cw, ch);
    const px = this._g.getImageData(0, 0, cw, ch).data;
    const luma = new Float32Array(cw * ch);
    let sum = 0, diff = 0;
    for (let i = 0; i < luma.length; i++) {
      luma[i] = 0.299 * px[4 * i] + 0.587 * px[4 * i + 1] + 0.114 * px[4 * i + 2];
      sum += luma[i];
      if (this._mouthPrev) diff += Math.abs(luma[i] - this._mouthPrev[i]);
    }
    const motion = this._mouthPrev ? diff / luma.length : 0;
    this._mouthPrev = luma;
    return [sum / luma.length, motion];
  }

  /** Frames presented per second over the last `windowMs`. */
  fps(windowMs = 2000) {
    const f = this.frames;
    if (f.length < 2) return 0;
    const end = f[f.length - 1];
    let i = f.length - 1;
    while (i > 0 && end[0] - f[i - 1][0] <= windowMs) i--;
    const dt = end[0] - f[i][0];
    return dt > 0 ? ((end[1] - f[i][1]) * 1000) / dt : 0;
  }

  /** Read getStats() of the received tracks: RTT, loss, jitter buffers, played-out A/V offset. */
  async poll() {
    const out = {};
    for (const kind of ["video", "audio"]) {
      const track = this._tracks[kind];
      if (!track) continue;
      const report = await track.getRTCStatsReport();
      if (!report) continue;
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === kind) {
          out[kind] = s;
          const codec = s.codecId && report.get(s.codecId);
          if (codec) out[kind + "Codec"] = codec.mimeType.split("/")[1];
        } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          out.rttMs = s.currentRoundTripTime !== undefined ? s.currentRoundTripTime * 1000 : out.rttMs;
        }
      });
    }
    const net = { rttMs: out.rttMs ?? null, videoCodec: out.videoCodec, audioCodec: out.audioCodec };
    for (const kind of ["video", "audio"]) {
      const s = out[kind], p = this._prev.stats[kind];
      if (!s) continue;
      const lost = s.packetsLost - (p ? p.packetsLost : 0), got = s.packetsReceived - (p ? p.packetsReceived : 0);
      net[kind + "LossPct"] = lost + got > 0 ? (100 * Math.max(0, lost)) / (lost + got) : 0;
      const emitted = s.jitterBufferEmittedCount - (p ? p.jitterBufferEmittedCount : 0);
      const delay = s.jitterBufferDelay - (p ? p.jitterBufferDelay : 0);
      net[kind + "JitterBufferMs"] = emitted > 0 ? (1000 * delay) / emitted : null;
      if (kind === "video") {
        net.decodedFps = s.framesPerSecond ?? null;
        net.framesDropped = s.framesDropped ?? 0;
        net.size = s.frameWidth ? `${s.frameWidth}x${s.frameHeight}` : "";
        net.decoder = s.decoderImplementation || "";
      }
    }
    // Both tracks' estimatedPlayoutTimestamp are sender (NTP) times of what is being played now:
    // video ahead of audio = the audio is late. Corrected for the two reports' own time stamps.
    const v = out.video, a = out.audio;
    if (v && a && v.estimatedPlayoutTimestamp && a.estimatedPlayoutTimestamp) {
      net.avOffsetMs = (v.estimatedPlayoutTimestamp - a.estimatedPlayoutTimestamp) - (v.timestamp - a.timestamp);
    }
    this._prev.stats = out;
    this.net = net;
    push(this.netHistory, [performance.now(), net]);
    return net;
  }

  text() {
    const n = this.net, f = (x, d = 0) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
    const level = this.audio.length ? this.audio[this.audio.length - 1][1] : 0;
    return [
      `video ${n.size || "–"} ${n.videoCodec || ""}  ${f(this.fps(), 1)} fps  dropped ${f(n.framesDropped)}`,
      `audio ${n.audioCodec || ""}  level ${level > 0 ? f(20 * Math.log10(level)) + " dB" : "silent"}`,
      `A/V offset ${n.avOffsetMs === undefined ? "–" : (n.avOffsetMs >= 0 ? "+" : "") + f(n.avOffsetMs) + " ms (+ = audio late)"}`,
      `RTT ${f(n.rttMs)} ms  loss v ${f(n.videoLossPct, 1)}% a ${f(n.audioLossPct, 1)}%`,
      `jitter buffer v ${f(n.videoJitterBufferMs)} ms a ${f(n.audioJitterBufferMs)} ms`,
    ].join("\n");
  }

  /** The raw record, for tests and benchmarks (times are performance.now() milliseconds). */
  timeline() {
    return {
      frames: this.frames, audio: this.audio, mic: this.mic, net: this.net, netHistory: this.netHistory,
      firstFrameAt: this.firstFrameAt, firstAudioAt: this.firstAudioAt, fps: this.fps(),
    };
  }
}
